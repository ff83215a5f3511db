"""Real Traefik (installed by `make test`) routes subdomains to tenant apps; end to end on both stores."""
import time

import httpx
import pytest

from odoosaas.drivers.local import find_traefik
from odoosaas.pg.clusters import free_port
from odoosaas.reconcile.worker import Worker
from tests.conftest import Caller, make_app


@pytest.fixture
def routed_app(workdir, store_url):
    port = free_port()
    app = make_app(workdir, traefik_port=port, database_url=store_url)
    assert find_traefik(app.extensions["odoosaas"].settings), "no Traefik binary: run testbed/traefik/build.sh"
    assert app.extensions["odoosaas"].driver.start_edge()
    yield app, port
    app.extensions["odoosaas"].driver.close()


def through_traefik(port: int, host: str, want: int, timeout: float = 10) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/", headers={"Host": host})
            if response.status_code == want or time.monotonic() > deadline:
                return response
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.1)


def test_subdomain_routes_to_the_tenant_app(routed_app):
    app, port = routed_app
    caller = Caller(app.test_client(), "edge@example.com")
    ids = {name: caller.create(name).json["tenant"]["id"] for name in ("north", "south")}
    Worker(app.extensions["odoosaas"]).run_until_idle(60)
    for name, tenant_id in ids.items():
        tenant = caller.get(f"/api/v1/tenants/{tenant_id}").json["tenant"]
        assert tenant["status"] == "running" and tenant["url"] == f"http://{name}.localhost:{port}"
        assert tenant["routing"] == "subdomain"
        page = through_traefik(port, f"{name}.localhost", 200)
        assert page.status_code == 200 and f"<h1>{name}</h1>" in page.text
    caller.post(f"/api/v1/tenants/{ids['south']}/stop")  # a stopped tenant's route goes with it
    Worker(app.extensions["odoosaas"]).run_until_idle(60)
    assert through_traefik(port, "south.localhost", 404).status_code == 404
    caller.post(f"/api/v1/tenants/{ids['south']}/start")
    caller.delete(f"/api/v1/tenants/{ids['north']}")
    Worker(app.extensions["odoosaas"]).run_until_idle(60)
    assert through_traefik(port, "north.localhost", 404).status_code == 404
    assert through_traefik(port, "south.localhost", 200).status_code == 200


def test_a_tenant_in_maintenance_shows_the_portals_page_not_a_502(workdir):
    import threading

    import waitress

    from tests.inspect import tenant_row
    from odoosaas.reconcile.context import Context
    portal_port, port = free_port(), free_port()
    app = make_app(workdir, traefik_port=port, portal_url=f"http://127.0.0.1:{portal_port}")
    platform = app.extensions["odoosaas"]
    assert platform.driver.start_edge()
    server = waitress.create_server(app, host="127.0.0.1", port=portal_port, threads=2)
    threading.Thread(target=server.run, daemon=True).start()
    try:
        tenant_id = Caller(app.test_client(), "calm@example.com").create("calm").json["tenant"]["id"]
        Worker(platform).run_until_idle(60)
        tenant = tenant_row(app, tenant_id)
        platform.driver.stop(tenant)  # as a move's switch does
        platform.driver.route(tenant, Context(platform, tenant).spec(), maintenance=True)
        page = through_traefik(port, "calm.localhost", 503)
        assert page.status_code == 503 and "under maintenance" in page.text
        tenant = tenant_row(app, tenant_id)
        platform.driver.apply(tenant, Context(platform, tenant).spec())  # as the switch brings it back
        platform.driver.route(tenant, Context(platform, tenant).spec())
        assert "<h1>calm</h1>" in through_traefik(port, "calm.localhost", 200).text
    finally:
        server.close()
        platform.driver.close()
