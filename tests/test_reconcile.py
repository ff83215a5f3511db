"""The provisioning engine on the local driver: real PostgreSQL clusters, app processes, sample app."""
import re

import psycopg
import pytest

from odoosaas.reconcile.worker import Worker
from tests.conftest import Caller, make_app
from tests.inspect import app_processes, database_state, tenant_row

PASSWORD = "admin-pass-1"


@pytest.fixture
def app(workdir, store_url):
    """The engine on both stores: PostgreSQL is the production one (review defect 1)."""
    app = make_app(workdir, database_url=store_url)
    yield app
    app.extensions["odoosaas"].driver.close()
    app.extensions["odoosaas"].store.dispose()


@pytest.fixture
def platform_app(app):
    return app


@pytest.fixture
def owner(platform_app):
    return Caller(platform_app.test_client(), "owner@example.com")


def converge(app, timeout=60):
    Worker(app.extensions["odoosaas"]).run_until_idle(timeout)


def app_login(url: str, login: str, password: str) -> bool:
    """Odoo's JSON-RPC login (the sample app answers it the same way)."""
    import httpx
    body = {"jsonrpc": "2.0", "params": {"db": "", "login": login, "password": password}}
    return "result" in httpx.post(url + "/web/session/authenticate", json=body, timeout=10).json()


def test_create_serves_the_sample_app(platform_app, owner, operator):
    import httpx
    tenant_id = owner.create("acme").json["tenant"]["id"]
    converge(platform_app)
    tenant = owner.get(f"/api/v1/tenants/{tenant_id}").json["tenant"]
    assert tenant["status"] == "running", tenant["status_detail"]
    assert tenant["progress"]["done"] == 6 and all(s["finished_at"] for s in tenant["progress"]["steps"])
    assert tenant["db_server"] == "shared-1" and tenant["node"] and tenant["routing"] == "direct port"
    first = httpx.get(tenant["url"]).text
    assert "acme" in first and "Visits: <span id=visits>1<" in first
    assert "owner@example.com" not in first  # visitors are anonymous: the admin login is not theirs to see
    assert "Visits: <span id=visits>2<" in httpx.get(tenant["url"]).text
    assert httpx.get(tenant["url"] + "/web/health").json() == {"status": "pass"}
    assert len(app_processes(tenant_id)) == 1
    usage = operator.get(f"/api/v1/admin/tenants/{tenant_id}").json["tenant"]["usage"]
    assert usage["source"] == "process" and 5 * 2**20 < usage["memory_bytes"] < 1024 * 2**20
    assert usage["db_size_bytes"] > 1_000_000 and usage["db_connections"] >= 0


def test_stop_start_delete_cleans_up(platform_app, owner):
    tenant_id = owner.create("cycle").json["tenant"]["id"]
    converge(platform_app)
    owner.post(f"/api/v1/tenants/{tenant_id}/stop")
    converge(platform_app)
    assert owner.get(f"/api/v1/tenants/{tenant_id}").json["tenant"]["status"] == "stopped"
    assert app_processes(tenant_id) == []
    owner.post(f"/api/v1/tenants/{tenant_id}/start")
    converge(platform_app)
    assert owner.get(f"/api/v1/tenants/{tenant_id}").json["tenant"]["status"] == "running"
    assert len(app_processes(tenant_id)) == 1
    owner.delete(f"/api/v1/tenants/{tenant_id}")
    converge(platform_app)
    assert owner.get(f"/api/v1/tenants/{tenant_id}").status_code == 404
    assert tenant_row(platform_app, tenant_id).status == "deleted"
    assert app_processes(tenant_id) == []
    assert database_state(platform_app, tenant_id) == {"databases": 0, "roles": 0}
    assert not (platform_app.extensions["odoosaas"].settings.data_dir / "apps" / tenant_id).exists()


def test_dedicated_tenant_gets_its_own_cluster(platform_app, owner, operator):
    tenant_id = owner.create("bigco", tier="premium").json["tenant"]["id"]
    converge(platform_app)
    tenant = owner.get(f"/api/v1/tenants/{tenant_id}").json["tenant"]
    assert tenant["status"] == "running" and tenant["db_server"].startswith("ded-bigco-")
    servers = {s["name"]: s for s in operator.get("/api/v1/admin/db-servers").json["items"]}
    assert servers[tenant["db_server"]]["kind"] == "dedicated" and servers[tenant["db_server"]]["tenants"] == 1
    cluster = platform_app.extensions["odoosaas"].settings.data_dir / "pg" / tenant["db_server"]
    assert (cluster / "data" / "PG_VERSION").exists()
    owner.delete(f"/api/v1/tenants/{tenant_id}")
    converge(platform_app)
    assert not cluster.exists()
    assert operator.get("/api/v1/admin/db-servers").json["items"] == []


def test_full_shared_server_gets_a_sibling(workdir):
    app = make_app(workdir, shared_capacity=2)
    caller = Caller(app.test_client(), "many@example.com")
    ids = [caller.create(f"shop-{i}").json["tenant"]["id"] for i in range(3)]
    converge(app)
    servers = [caller.get(f"/api/v1/tenants/{i}").json["tenant"]["db_server"] for i in ids]
    assert sorted(servers) == ["shared-1", "shared-1", "shared-2"]
    from odoosaas.tenants import fleet
    with app.extensions["odoosaas"].store.session() as db:
        loads = {s["name"]: (s["tenants"], s["capacity"], s["utilization"]) for s in fleet.db_servers(db)}
    assert loads == {"shared-1": (2, 2, 1.0), "shared-2": (1, 2, 0.5)}
    app.extensions["odoosaas"].driver.close()


def test_tenant_roles_are_isolated(platform_app, owner):
    ids = [owner.create(name).json["tenant"]["id"] for name in ("left", "right")]
    converge(platform_app)
    p = platform_app.extensions["odoosaas"]
    from odoosaas.reconcile.context import Context
    left, right = (Context(p, tenant_row(platform_app, i)).spec().database for i in ids)
    assert left["host"] == right["host"] and left["port"] == right["port"], "both on one shared server"
    with pytest.raises(psycopg.OperationalError, match="permission denied"):
        psycopg.connect(**{**left, "dbname": right["dbname"]})
    with psycopg.connect(**left) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"SET ROLE {right['user']}")
    with psycopg.connect(**{**left, "dbname": "postgres"}) as conn:  # Odoo's entrypoint needs this one
        acls = dict(conn.execute("SELECT datname, datacl::text FROM pg_database WHERE datname LIKE 't\\_%'").fetchall())
    assert set(acls) == {"t_left", "t_right"}
    for acl in acls.values():  # an entry with no grantee before '=' is PUBLIC
        assert acl and not any(entry.startswith("=") for entry in acl.strip("{}").split(",")), acl


def test_delete_while_creating(platform_app, owner):
    tenant_id = owner.create("hasty").json["tenant"]["id"]
    assert owner.delete(f"/api/v1/tenants/{tenant_id}").status_code == 202
    converge(platform_app)
    assert tenant_row(platform_app, tenant_id).status == "deleted"
    assert app_processes(tenant_id) == []


@pytest.fixture
def tiny_app(workdir):
    # 40 MB of address space is too little for Python: the memory limit is really enforced
    app = make_app(workdir, tiers={"basic": {"memory_mb": 40}}, ready_timeout=3)
    yield app
    app.extensions["odoosaas"].driver.close()


def test_app_that_never_answers_fails_with_a_reason(workdir, tiny_app):
    app = tiny_app
    caller = Caller(app.test_client(), "tiny@example.com")
    tenant_id = caller.create("tiny").json["tenant"]["id"]
    converge(app, timeout=30)
    tenant = caller.get(f"/api/v1/tenants/{tenant_id}").json["tenant"]
    assert tenant["status"] == "failed" and "health check" in tenant["status_detail"]
    assert [s["state"] for s in tenant["progress"]["steps"]][-1] == "failed"
    log = (workdir / "logs" / "tiny.log").read_text()
    assert re.search(r"MemoryError|failed to map segment|Cannot allocate memory", log), log[-500:]
    caller.post(f"/api/v1/tenants/{tenant_id}/start")  # start retries a failed tenant
    assert caller.get(f"/api/v1/tenants/{tenant_id}").json["tenant"]["status"] == "starting"


def test_secrets_stay_out_of_argv_logs_and_responses(platform_app, owner, operator):
    tenant_id = owner.create("quiet", admin_password="Sup3r-Secret-Admin").json["tenant"]["id"]
    converge(platform_app)
    p = platform_app.extensions["odoosaas"]
    db_password = p.box.open(tenant_row(platform_app, tenant_id).secrets)["db_password"]
    for pid in app_processes(tenant_id):
        argv = open(f"/proc/{pid}/cmdline", "rb").read().decode()
        assert db_password not in argv and "Sup3r-Secret-Admin" not in argv
    logs = "".join(f.read_text(errors="replace") for f in p.settings.data_dir.rglob("*.log"))
    assert db_password not in logs and "Sup3r-Secret-Admin" not in logs
    responses = str(owner.get(f"/api/v1/tenants/{tenant_id}").json) + str(operator.get(
        f"/api/v1/admin/tenants/{tenant_id}").json) + str(operator.get("/api/v1/admin/db-servers").json)
    assert db_password not in responses and "Sup3r-Secret-Admin" not in responses
    config = next((p.settings.data_dir / "apps" / tenant_id).glob("*.json"))
    assert config.stat().st_mode & 0o077 == 0


def test_admin_is_set_once_and_when_the_owner_asks(platform_app, owner):
    """Review defect 4: a password changed inside the app is not set back by stop/start or a new worker."""
    from odoosaas import apps
    from odoosaas.reconcile.context import Context
    tenant_id = owner.create("keys").json["tenant"]["id"]
    converge(platform_app)
    url = owner.get(f"/api/v1/tenants/{tenant_id}").json["tenant"]["url"]
    assert app_login(url, "owner@example.com", PASSWORD) and not app_login(url, "owner@example.com", "wrong-pass")
    spec = Context(platform_app.extensions["odoosaas"], tenant_row(platform_app, tenant_id)).spec()
    spec.admin_password = "changed-in-the-app"  # as the owner would, in the app's own preferences
    apps.template("sample").set_admin(spec)
    owner.post(f"/api/v1/tenants/{tenant_id}/stop")
    converge(platform_app)
    owner.post(f"/api/v1/tenants/{tenant_id}/start")
    converge(platform_app)
    url = owner.get(f"/api/v1/tenants/{tenant_id}").json["tenant"]["url"]
    assert app_login(url, "owner@example.com", "changed-in-the-app")
    assert not app_login(url, "owner@example.com", PASSWORD)

    short = owner.post(f"/api/v1/tenants/{tenant_id}/admin-password", json={"password": "short"})
    assert short.status_code == 400 and "password" in short.json["error"]["fields"]
    asked = owner.post(f"/api/v1/tenants/{tenant_id}/admin-password", json={"password": "chosen-by-owner"})
    assert asked.status_code == 202 and "chosen-by-owner" not in str(asked.json)
    converge(platform_app)
    assert owner.get(f"/api/v1/tenants/{tenant_id}").json["tenant"]["status"] == "running"
    assert app_login(url, "owner@example.com", "chosen-by-owner")
    assert not app_login(url, "owner@example.com", "changed-in-the-app")


def test_other_users_cannot_set_the_admin_password(platform_app, owner):
    tenant_id = owner.create("mine").json["tenant"]["id"]
    mallory = Caller(platform_app.test_client(), "mallory@example.com")
    r = mallory.post(f"/api/v1/tenants/{tenant_id}/admin-password", json={"password": "taken-over-1"})
    assert r.status_code == 404 and r.json["error"]["code"] == "not_found"
    assert tenant_row(platform_app, tenant_id).admin_set is False and tenant_row(platform_app, tenant_id).generation == 1


def test_a_stopped_tenants_port_is_never_served_by_another(platform_app, owner):
    """Review defect 5: stop A, B starts, someone takes A's old port, start A: A's URL serves A."""
    import socket
    import httpx
    first = owner.create("first").json["tenant"]["id"]
    converge(platform_app)
    owner.post(f"/api/v1/tenants/{first}/stop")
    converge(platform_app)
    old_url = owner.get(f"/api/v1/tenants/{first}").json["tenant"]["url"]
    second = owner.create("second").json["tenant"]["id"]
    converge(platform_app)
    assert owner.get(f"/api/v1/tenants/{second}").json["tenant"]["url"] != old_url
    squatter = socket.create_server(("127.0.0.1", int(old_url.rsplit(":", 1)[1])))
    try:
        owner.post(f"/api/v1/tenants/{first}/start")
        converge(platform_app)
        tenant = owner.get(f"/api/v1/tenants/{first}").json["tenant"]
        assert tenant["status"] == "running", tenant["status_detail"]
        assert tenant["url"] != old_url and "<h1>first</h1>" in httpx.get(tenant["url"]).text
    finally:
        squatter.close()


def test_waiting_for_the_app_does_not_redo_earlier_steps(workdir, store_url):
    """Review defect 7: while readiness is awaited, the role and the admin are not rewritten each pass."""
    app = make_app(workdir, database_url=store_url, tiers={"basic": {"memory_mb": 40}}, ready_timeout=12)
    caller = Caller(app.test_client(), "patient@example.com")
    tenant_id = caller.create("patient").json["tenant"]["id"]
    p = app.extensions["odoosaas"]
    worker = Worker(p)
    worker.run_until_idle(timeout=1)  # database, runtime, admin, routing done; then 2 s of polling in vain

    def role_version():
        tenant = tenant_row(app, tenant_id)
        from odoosaas.store.models import DbServer
        with p.store.session() as db:
            server = db.get(DbServer, tenant.db_server_id)
        with psycopg.connect(**p.box.open(server.secret), host=server.host, port=server.port, dbname="postgres") as c:
            return c.execute("SELECT xmin::text FROM pg_authid WHERE rolname = 't_patient'").fetchone()[0]
    before = role_version()
    worker.run_until_idle(timeout=5.5)  # passes of 2 s (a sixth of the timeout) after backoffs of 1 s, 2 s
    row = tenant_row(app, tenant_id)
    assert row.status == "creating" and 2 <= row.attempts <= 4, row.attempts
    assert role_version() == before
    p.driver.close()


def test_a_second_worker_leaves_a_live_workers_leases(platform_app, owner):
    """Review defect 11: only leases of dead workers on this host are cleared at start."""
    import socket
    from datetime import timedelta
    from odoosaas.store.models import Tenant, now
    ids = [owner.create(name).json["tenant"]["id"] for name in ("held", "orphaned")]
    host = socket.gethostname()
    p = platform_app.extensions["odoosaas"]
    live, dead = f"{host}:{__import__('os').getpid()}:abc123", f"{host}:999999999:def456"
    with p.store.session() as db:
        for tenant_id, owner_name in zip(ids, (live, dead)):
            row = db.get(Tenant, tenant_id)
            row.lease_owner, row.lease_until = owner_name, now() + timedelta(seconds=60)
    Worker(p).release_dead_host_leases()
    assert tenant_row(platform_app, ids[0]).lease_owner == live
    assert tenant_row(platform_app, ids[1]).lease_owner is None


def test_an_idle_worker_loads_no_converged_tenant(workdir, store_url):
    """Review defect 12: claiming costs nothing per converged tenant."""
    from sqlalchemy import event, update
    from odoosaas.store.models import Tenant
    app = make_app(workdir, database_url=store_url, free_max_instances=100)
    owner = Caller(app.test_client(), "calm@example.com")
    ids = [owner.create(f"calm-{i}").json["tenant"]["id"] for i in range(30)]
    p = app.extensions["odoosaas"]
    with p.store.session() as db:  # converged rows, as a worker leaves them
        db.execute(update(Tenant).values(status="running", observed_generation=Tenant.generation))
    worker = Worker(p)
    worker.resync = {}  # its start-up pass is behind it
    loaded = []

    def count(target, context):
        loaded.append(target.id)
    event.listen(Tenant, "load", count)
    try:
        assert worker.claim(4) == []
    finally:
        event.remove(Tenant, "load", count)
    assert loaded == [] and len(ids) == 30
    p.store.dispose()


def test_a_long_step_keeps_its_lease(platform_app, owner):
    """The heartbeat renews the leases of rows this worker drives, and only those."""
    from datetime import timedelta
    from odoosaas.store.models import Tenant, now
    ids = [owner.create(name).json["tenant"]["id"] for name in ("long", "other")]
    p = platform_app.extensions["odoosaas"]
    worker = Worker(p)
    assert worker.lease("tenant", ids[0])
    with p.store.session() as db:
        for tenant_id in ids:
            db.get(Tenant, tenant_id).lease_until = now() + timedelta(seconds=1)
    worker.renew_leases()
    assert tenant_row(platform_app, ids[0]).lease_until > now() + timedelta(seconds=50)
    assert tenant_row(platform_app, ids[1]).lease_until < now() + timedelta(seconds=2)
