"""Real Odoo 18 (installed by `make odoo`) on real PostgreSQL behind real Traefik.

One platform for the module: the first tenants build the shared server's template database,
the others clone it. Logins go through Traefik on the tenant's subdomain, as a browser's would.
"""
import base64
import dataclasses
import json
import socket
import subprocess
import threading
import time

import httpx
import psycopg
import pytest

from odoosaas import apps
from odoosaas.apps import odoo
from odoosaas.drivers.local import find_traefik
from odoosaas.pg import ops
from odoosaas.pg.clusters import free_port
from odoosaas.reconcile.context import Context
from odoosaas.reconcile.worker import Worker
from odoosaas.store.models import DbServer
from tests.conftest import Caller, make_app, scratch_dir, stop_clusters
from tests.inspect import app_processes, database_state, tenant_row

pytestmark = pytest.mark.skipif(not odoo.odoo_bin().is_file(), reason="Odoo is not installed: run `make odoo`")
PASSWORD = "admin-pass-1"


@pytest.fixture(scope="module")
def platform_app():
    workdir = scratch_dir()
    port = free_port()
    app = make_app(workdir, odoo_bin="", local_fallback_app="", traefik_port=port, free_max_instances=20)
    platform = app.extensions["odoosaas"]
    assert find_traefik(platform.settings) and platform.driver.start_edge(), "no Traefik binary"
    stop = threading.Event()
    worker = threading.Thread(target=Worker(platform).run, args=(stop,), daemon=True)
    worker.start()
    yield app, port
    stop.set()
    worker.join(30)
    platform.driver.close()
    platform.store.dispose()
    stop_clusters(workdir)
    subprocess.run(["rm", "-rf", str(workdir)], check=False)


@pytest.fixture(scope="module")
def owner(platform_app):
    return Caller(platform_app[0].test_client(), "odoo-owner@example.com")


def wait_for(caller, tenant_id, status="running", timeout=120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tenant = caller.get(f"/api/v1/tenants/{tenant_id}").json["tenant"]
        if tenant["status"] == "failed" or tenant["status"] == status and tenant["progress"]["done"] == len(
                tenant["progress"]["steps"]):
            break
        time.sleep(0.1)
    assert tenant["status"] == status, tenant["status_detail"]
    return tenant


@pytest.fixture(scope="module")
def pair(platform_app, owner):
    """Two tenants asked for at once on a new shared server: one with `contacts`, one without."""
    ids = {"left": owner.create("left", admin_email="left@example.com", modules=["contacts"]).json["tenant"]["id"],
           "right": owner.create("right", admin_email="right@example.com").json["tenant"]["id"]}
    return {name: wait_for(owner, tenant_id) for name, tenant_id in ids.items()}


def spec_of(app, tenant_id):
    return Context(app.extensions["odoosaas"], tenant_row(app, tenant_id)).spec()


def server_admin(app, tenant_id) -> dict:
    p = app.extensions["odoosaas"]
    with p.store.session() as db:
        server = db.get(DbServer, tenant_row(app, tenant_id).db_server_id)
    return {**p.box.open(server.secret), "host": server.host, "port": server.port}


def rpc(port, sub, path, params, cookies=None) -> httpx.Response:
    return httpx.post(f"http://127.0.0.1:{port}{path}", headers={"Host": f"{sub}.localhost"}, cookies=cookies,
                      json={"jsonrpc": "2.0", "method": "call", "params": params}, timeout=60)


def login(port, sub, login_name, password) -> httpx.Response:
    return rpc(port, sub, "/web/session/authenticate", {"db": ops.names(sub), "login": login_name,
                                                          "password": password})


def uid(response) -> int | None:
    return (response.json().get("result") or {}).get("uid")


def call(port, sub, session, model, method, *args, **kwargs):
    response = rpc(port, sub, "/web/dataset/call_kw", {"model": model, "method": method, "args": list(args),
                                                      "kwargs": kwargs}, cookies=session.cookies)
    return response.json()


def test_both_tenants_log_in_through_traefik_and_only_with_their_own_admin(platform_app, pair):
    app, port = platform_app
    for sub in ("left", "right"):
        assert pair[sub]["url"] == f"http://{sub}.localhost:{port}" and pair[sub]["routing"] == "subdomain"
        page = httpx.get(f"http://127.0.0.1:{port}/web/login", headers={"Host": f"{sub}.localhost"})
        assert page.status_code == 200 and 'name="password"' in page.text
        assert uid(login(port, sub, f"{sub}@example.com", PASSWORD)) == 2
    assert "AccessDenied" in login(port, "left", "left@example.com", "wrong-password").text
    # the other tenant's admin, and the right password for the wrong instance
    assert uid(login(port, "left", "right@example.com", PASSWORD)) is None
    assert uid(login(port, "right", "left@example.com", PASSWORD)) is None
    assert pair["left"]["progress"]["done"] == 6
    assert [s["name"] for s in pair["left"]["progress"]["steps"]] == [
        "billing", "database", "runtime", "admin_credentials", "routing", "ready"]


def test_database_manager_is_off_and_the_database_pinned(platform_app, pair):
    app, port = platform_app
    manager = httpx.get(f"http://127.0.0.1:{port}/web/database/manager", headers={"Host": "left.localhost"})
    assert "disabled" in manager.text.lower() or manager.status_code in (403, 404)
    other_db = rpc(port, "left", "/web/session/authenticate", {"db": "t_right", "login": "right@example.com",
                                                               "password": PASSWORD})
    assert uid(other_db) is None


def test_requested_modules_are_installed(platform_app, owner, pair):
    app, _ = platform_app
    states = {m["name"]: m["state"] for m in odoo.installed_modules(spec_of(app, pair["left"]["id"]))}
    assert states["contacts"] == "installed"
    states = {m["name"]: m["state"] for m in odoo.installed_modules(spec_of(app, pair["right"]["id"]))}
    assert states["contacts"] == "uninstalled"


def test_each_clone_is_its_tenants_own(platform_app, pair):
    app, port = platform_app
    admin = server_admin(app, pair["left"]["id"])
    identities = {}
    for sub in ("left", "right"):
        with psycopg.connect(**admin, dbname=ops.names(sub)) as conn:
            owners = conn.execute(
                "SELECT DISTINCT pg_get_userbyid(owner) FROM (SELECT relowner FROM pg_class WHERE relnamespace = "
                "'public'::regnamespace UNION ALL SELECT typowner FROM pg_type WHERE typnamespace = "
                "'public'::regnamespace UNION ALL SELECT proowner FROM pg_proc WHERE pronamespace = "
                "'public'::regnamespace) AS objects(owner)").fetchall()
            assert owners == [(ops.names(sub),)]
            identities[sub] = dict(conn.execute("SELECT key, value FROM ir_config_parameter WHERE key IN "
                                                "('database.uuid', 'database.secret', 'database.create_date')"))
            assert conn.execute("SELECT datdba::regrole::text FROM pg_database WHERE datname = current_database()"
                                ).fetchone()[0] == ops.names(sub)
    with psycopg.connect(**admin, dbname="postgres") as conn:
        template = conn.execute("SELECT datallowconn, datdba::regrole::text FROM pg_database WHERE datname = %s",
                                (odoo.TEMPLATE_DB,)).fetchone()
        assert template == (False, admin["user"]), "the template refuses connections and is no tenant's"
        assert conn.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", (odoo.TEMPLATE_DB,)).fetchone() == (
            False,)
    assert identities["left"]["database.uuid"] != identities["right"]["database.uuid"]
    assert identities["left"]["database.secret"] != identities["right"]["database.secret"]
    assert identities["left"]["database.create_date"] >= time.strftime("%Y-%m-%d", time.gmtime(time.time() - 3600))
    # its own filestore: what it stores lands in its folder; what the template had is in the database
    session = login(port, "left", "left@example.com", PASSWORD)
    created = call(port, "left", session, "ir.attachment", "create",
                   {"name": "note.txt", "datas": base64.b64encode(b"left's own file").decode()})
    assert isinstance(created.get("result"), int), created
    filestore = app.extensions["odoosaas"].settings.data_dir / "apps" / pair["left"]["id"] / "filestore"
    files = [f for f in (filestore / "filestore" / "t_left").rglob("*") if f.is_file() and "checklist" not in f.parts]
    assert any(f.read_bytes() == b"left's own file" for f in files)
    logo = call(port, "left", session, "res.company", "read", [1], ["logo"])
    assert logo["result"][0]["logo"], "the template's attachments came along in the database"


def test_odoo_runs_under_the_tiers_memory_cap_and_answers_the_websocket(platform_app, pair):
    app, port = platform_app
    (pid,) = app_processes(pair["left"]["id"])
    limits = open(f"/proc/{pid}/limits").read()
    line = next(row for row in limits.splitlines() if row.startswith("Max address space"))
    assert line.split()[3:5] == [str(1024 * 2**20)] * 2, line  # basic tier: 1024 MB, soft and hard
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:  # the bus, through Traefik
        sock.sendall(b"GET /websocket HTTP/1.1\r\nHost: left.localhost\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     b"Sec-WebSocket-Version: 13\r\nOrigin: http://left.localhost\r\n\r\n")
        assert sock.recv(200).startswith(b"HTTP/1.1 101"), "Odoo serves /websocket on its HTTP port"


def test_set_admin_takes_effect_in_the_running_odoo(platform_app, pair):
    app, port = platform_app
    spec = spec_of(app, pair["right"]["id"])
    old = login(port, "right", "right@example.com", PASSWORD)
    assert uid(old) == 2
    assert call(port, "right", old, "res.partner", "search_count", [])["result"] >= 1
    odoo.set_admin(dataclasses.replace(spec, admin_password="brand-new-pass"))
    assert uid(login(port, "right", "right@example.com", PASSWORD)) is None
    assert uid(login(port, "right", "right@example.com", "brand-new-pass")) == 2
    assert "error" in call(port, "right", old, "res.partner", "search_count", []), "the old session ended"
    odoo.set_admin(spec)  # back as the platform knows it


def test_owner_sets_a_new_admin_password_through_the_api(platform_app, owner, pair):
    app, port = platform_app
    tenant_id = pair["left"]["id"]
    response = owner.post(f"/api/v1/tenants/{tenant_id}/admin-password", json={"password": "owner-chosen-9"})
    assert response.status_code == 202, response.json
    wait_for(owner, tenant_id)
    assert uid(login(port, "left", "left@example.com", "owner-chosen-9")) == 2
    assert uid(login(port, "left", "left@example.com", PASSWORD)) is None
    owner.post(f"/api/v1/tenants/{tenant_id}/admin-password", json={"password": PASSWORD})
    wait_for(owner, tenant_id)


def test_web_base_url_follows_the_primary_custom_domain(platform_app, owner, pair):
    from odoosaas.store.models import Domain, Tenant
    from odoosaas.tenants import service
    app, port = platform_app
    tenant_id, platform = pair["right"]["id"], app.extensions["odoosaas"]
    assert owner.post(f"/api/v1/tenants/{tenant_id}/domains", json={"name": "erp.right.example"}).status_code == 201
    with platform.store.session() as db:  # proven (the DNS proof and TLS are tests/test_domains.py's)
        db.get(Domain, "erp.right.example").status = "verified"
        service.rerun(db, db.get(Tenant, tenant_id), "routing a domain")
    platform.wake()
    wait_for(owner, tenant_id)
    session = login(port, "right", "right@example.com", PASSWORD)  # an admin's login must not set it back
    assert uid(session) == 2
    value = call(port, "right", session, "ir.config_parameter", "get_param", "web.base.url")
    assert value["result"] == "https://erp.right.example", value


def test_an_app_installed_later_beside_the_running_server_is_picked_up(platform_app, owner, pair):
    """POST /tenants/{id}/modules: an operation runs `odoo-bin -i` beside the server, which reloads."""
    app, port = platform_app
    tenant_id = pair["right"]["id"]
    session = login(port, "right", "right@example.com", PASSWORD)
    assert "error" in call(port, "right", session, "calendar.event", "search_count", [])
    response = owner.post(f"/api/v1/tenants/{tenant_id}/modules", json={"names": ["calendar"]})
    assert response.status_code == 202, response.json
    operation_id, deadline = response.json["operation"]["id"], time.monotonic() + 120
    while time.monotonic() < deadline:
        operation = next(o for o in owner.get(f"/api/v1/tenants/{tenant_id}/operations").json["items"]
                         if o["id"] == operation_id)
        if operation["status"] in ("done", "failed"):
            break
        time.sleep(0.2)
    assert operation["status"] == "done", operation["error"]
    assert call(port, "right", session, "calendar.event", "search_count", []) == {
        "jsonrpc": "2.0", "id": None, "result": 0}, "the running registry reloaded on the database's signal"
    states = {m["name"]: m["state"] for m in owner.get(f"/api/v1/tenants/{tenant_id}/modules").json["items"]}
    assert states["calendar"] == "installed" and states["crm"] == "uninstalled"


def test_catalogue_and_unknown_modules(platform_app, owner):
    app, _ = platform_app
    assert app.test_client().get("/api/v1/apps/odoo/modules").status_code == 401
    items = {m["name"]: m for m in owner.get("/api/v1/apps/odoo/modules").json["items"]}
    assert {"contacts", "crm", "project", "sale_management"} <= set(items)
    assert items["contacts"]["title"] == "Contacts" and items["contacts"]["summary"] and items["contacts"]["category"]
    assert "base" not in items and "web" not in items, "only applications"
    response = owner.create("nope-mods", modules=["contacts", "no_such_app"])
    assert response.status_code == 400
    error = response.json["error"]
    assert "no_such_app" in error["message"] and "contacts" in error["fields"]["modules"]


def test_kubernetes_gets_the_options_the_local_runtime_proved(platform_app, pair, tmp_path):
    """Odoo's own option parser reads the local config file and the official image's args alike."""
    app, _ = platform_app
    spec = spec_of(app, pair["left"]["id"])
    keys = sorted(odoo.options(spec))
    script = ("import json, sys; from odoo.tools import config; config.parse_config(sys.argv[1:]); "
              f"print(json.dumps({{k: config[k] for k in {keys!r}}}))")
    workload = apps.template("odoo").k8s(spec, app.extensions["odoosaas"].settings)
    parsed = []
    for args in (["-c", str(odoo.local_config(spec, tmp_path / "odoo.conf", tmp_path))], workload.container["args"]):
        done = subprocess.run([*odoo.command()[:1], "-c", script, *args], capture_output=True, text=True,
                              cwd=odoo.odoo_bin().parent, check=True)
        parsed.append(json.loads(done.stdout.strip().splitlines()[-1]))
    assert parsed[0] == parsed[1]
    assert parsed[0]["dbfilter"] == "^t_left$" and parsed[0]["list_db"] is False and parsed[0]["proxy_mode"] is True
    assert parsed[0]["limit_memory_hard"] == 1024 * 2**20 and parsed[0]["workers"] == 0
    assert workload.init["args"][-3:] == ["-i", "base,contacts", "--stop-after-init"]
    _, local_env = odoo.local_command(spec, tmp_path, 8069)
    k8s_env = {e["name"]: e.get("value") for e in workload.container["env"]}
    assert odoo.process_env(spec).items() <= local_env.items() and odoo.process_env(spec).items() <= k8s_env.items()


def test_clone_converges_after_a_crash_between_clone_and_hand_over(platform_app, owner, pair):
    """What a worker killed mid-step leaves (a clone still the template role's) is finished next time."""
    app, _ = platform_app
    tenant_id = pair["left"]["id"]
    admin = server_admin(app, tenant_id)
    spec = dataclasses.replace(spec_of(app, tenant_id), tenant_id="crashed", subdomain="crashed")
    with ops.connect(admin) as conn:
        ops.ensure_role(conn, "t_crashed", "crashed-password-1", 5)
        ops.create_database(conn, "t_crashed", "t_crashed", template=odoo.TEMPLATE_DB)
        uuids = []
        for _ in range(2):  # the step again, and once more: nothing changes the second time
            odoo.create_database(conn, admin, "t_crashed", spec, clone=True)
            with psycopg.connect(**admin, dbname="t_crashed") as inside:
                uuids += inside.execute("SELECT value FROM ir_config_parameter WHERE key = 'database.uuid'").fetchone()
                assert inside.execute("SELECT count(*) FROM pg_class WHERE relowner = %s::regrole",
                                      (odoo.TEMPLATE_DB,)).fetchone() == (0,)
        assert uuids[0] == uuids[1]
        ops.drop(conn, "t_crashed", "t_crashed")


def test_a_dedicated_server_gets_base_installed_straight_into_the_tenants_database(platform_app, owner):
    app, port = platform_app
    tenant_id = owner.create("solo", tier="premium", admin_email="solo@example.com").json["tenant"]["id"]
    tenant = wait_for(owner, tenant_id, timeout=240)
    assert tenant["db_server"].startswith("ded-solo-")
    assert uid(login(port, "solo", "solo@example.com", PASSWORD)) == 2
    with psycopg.connect(**server_admin(app, tenant_id), dbname="postgres") as conn:
        assert not ops.database_exists(conn, odoo.TEMPLATE_DB), "one tenant per server: no template"
    owner.delete(f"/api/v1/tenants/{tenant_id}")


def test_an_odoo_tenant_moves_to_its_own_server_and_keeps_its_data(platform_app, pair):
    app, port = platform_app
    operator = Caller(app.test_client(), "odoo-ops@example.com")
    app.extensions["odoosaas"].auth.ensure_operator(operator.email, operator.password)
    session = login(port, "left", "left@example.com", PASSWORD)
    created = call(port, "left", session, "res.partner", "create", {"name": "Written before the move"})
    assert isinstance(created.get("result"), int), created
    tenant_id = pair["left"]["id"]
    move = operator.post(f"/api/v1/admin/tenants/{tenant_id}/migrate", json={"target_strategy": "dedicated"})
    assert move.status_code == 202, move.json
    deadline = time.monotonic() + 180
    while not (listed := operator.get("/api/v1/admin/migrations").json["items"][0])["operation"]["params"].get(
            "switched"):
        assert listed["status"] not in ("failed", "rolled_back") and time.monotonic() < deadline, listed
        time.sleep(0.5)
    assert listed["operation"]["params"]["downtime_seconds"] >= 0  # recorded; its target is bench/migrate.py's (P5)
    tenant = tenant_row(app, tenant_id)
    assert tenant.db_strategy == "dedicated" and server_admin(app, tenant_id)["port"] != server_admin(
        app, pair["right"]["id"])["port"]
    session = login(port, "left", "left@example.com", PASSWORD)
    assert uid(session) == 2
    found = call(port, "left", session, "res.partner", "search_count", [["name", "=", "Written before the move"]])
    assert found["result"] == 1, found


def answer_becomes(port, host: str, status: int, timeout: float = 5) -> bool:
    """Traefik applies a changed route file a moment after it changes (a watcher, then a 100 ms throttle)."""
    deadline = time.monotonic() + timeout
    while httpx.get(f"http://127.0.0.1:{port}/web/login", headers={"Host": host}).status_code != status:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_stop_start_delete(platform_app, owner, pair):
    app, port = platform_app
    tenant_id = pair["right"]["id"]
    settings = app.extensions["odoosaas"].settings
    owner.post(f"/api/v1/tenants/{tenant_id}/stop")
    wait_for(owner, tenant_id, "stopped")
    assert app_processes(tenant_id) == []
    assert answer_becomes(port, "right.localhost", 404), "Traefik drops the stopped tenant's route"
    owner.post(f"/api/v1/tenants/{tenant_id}/start")
    wait_for(owner, tenant_id)
    assert uid(login(port, "right", "right@example.com", PASSWORD)) == 2
    owner.delete(f"/api/v1/tenants/{tenant_id}")
    deadline = time.monotonic() + 60
    while tenant_row(app, tenant_id).status != "deleted" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert database_state(app, tenant_id) == {"databases": 0, "roles": 0}
    assert app_processes(tenant_id) == []
    assert not (settings.data_dir / "apps" / tenant_id).exists(), "config and filestore are gone"
    assert not (settings.data_dir / "traefik" / "right.yaml").exists()
    assert answer_becomes(port, "right.localhost", 404)
    assert uid(login(port, "left", "left@example.com", PASSWORD)) == 2, "the neighbour is untouched"
