"""Moving a tenant between shared and dedicated PostgreSQL (issue 11): real clusters, the sample app, rows
written all along by the tenant's own role; a real worker process killed after every step."""
import threading
import time

import httpx
import psycopg
import pytest

from odoosaas.reconcile.worker import Worker
from odoosaas.store.models import DbServer, Operation
from tests.conftest import Caller, make_app
from tests.inspect import tenant_row
from tests.test_crash import start_worker, stop, wait_for


@pytest.fixture
def app(workdir):
    app = make_app(workdir, move_grace_seconds=0)
    yield app
    app.extensions["odoosaas"].driver.close()
    app.extensions["odoosaas"].store.dispose()


def server_of(app, tenant_id: str) -> DbServer:
    with app.extensions["odoosaas"].store.session() as db:
        return db.get(DbServer, tenant_row(app, tenant_id).db_server_id)


def admin_of(app, server: DbServer) -> dict:
    return {**app.extensions["odoosaas"].box.open(server.secret), "host": server.host, "port": server.port}


def tenant_db(app, tenant_id: str, as_admin: bool = False) -> dict:
    """The tenant's database as its own role (what the app uses), or as the server's superuser."""
    tenant, server = tenant_row(app, tenant_id), server_of(app, tenant_id)
    name = "t_" + tenant.subdomain.replace("-", "_")
    if as_admin:
        return {**admin_of(app, server), "dbname": name}
    password = app.extensions["odoosaas"].box.open(tenant.secrets)["db_password"]
    return {"host": server.host, "port": server.port, "user": name, "password": password, "dbname": name}


def replication_left(app) -> list:
    """Slots, publications and subscriptions on every live server: a move leaves none."""
    left = []
    with app.extensions["odoosaas"].store.session() as db:
        servers = [s for s in db.query(DbServer).all() if s.status != "deleted"]
    for server in servers:
        with psycopg.connect(**admin_of(app, server), dbname="postgres", autocommit=True) as conn:
            left += conn.execute("SELECT slot_name FROM pg_replication_slots").fetchall()
            databases = [r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 't\\_%'")]
            left += conn.execute("SELECT subname FROM pg_subscription").fetchall()
        for name in databases:
            with psycopg.connect(**admin_of(app, server), dbname=name) as conn:
                left += conn.execute("SELECT pubname FROM pg_publication").fetchall()
    return left


def databases_on_shared(app) -> list:
    with app.extensions["odoosaas"].store.session() as db:
        server = db.query(DbServer).filter_by(name="shared-1").one()
    with psycopg.connect(**admin_of(app, server), dbname="postgres") as conn:
        return conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 't\\_%' UNION ALL "
                            "SELECT rolname FROM pg_roles WHERE rolname LIKE 't\\_%'").fetchall()


class Writer(threading.Thread):
    """Inserts rows as the tenant's role, wherever the tenant's database is now; keeps what was committed."""

    def __init__(self, app, tenant_id: str, first: int = 1):
        super().__init__(daemon=True)
        self.app, self.tenant_id, self.committed, self.attempt = app, tenant_id, [], first * 1_000_000
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            try:
                with psycopg.connect(**tenant_db(self.app, self.tenant_id), autocommit=True, connect_timeout=2) as conn:
                    while not self.halt.is_set():
                        self.attempt += 1
                        conn.execute("INSERT INTO ledger (n) VALUES (%s)", (self.attempt,))
                        self.committed.append(self.attempt)
                        time.sleep(0.005)
            except psycopg.Error:
                time.sleep(0.05)

    def check(self) -> int:
        self.halt.set()
        self.join(10)
        with psycopg.connect(**tenant_db(self.app, self.tenant_id)) as conn:
            rows = [r[0] for r in conn.execute("SELECT n FROM ledger")]
            next_id = conn.execute("INSERT INTO ledger (n) VALUES (0) RETURNING id").fetchone()[0]
            conn.rollback()
        assert len(rows) == len(set(rows)), "no row twice"
        assert set(self.committed) <= set(rows), "every committed row is on the new server"
        assert next_id > len(rows), "the sequence continues where the source's stopped"
        return len(self.committed)


def make_ledger(app, tenant_id: str) -> None:
    with psycopg.connect(**tenant_db(app, tenant_id), autocommit=True) as conn:
        conn.execute("CREATE TABLE ledger (id serial PRIMARY KEY, n int NOT NULL, pad text DEFAULT repeat('x', 200))")
        conn.execute("INSERT INTO ledger (n) SELECT -g FROM generate_series(1, 20000) g")


def drive(app, done, timeout: float = 90) -> None:
    worker, deadline = Worker(app.extensions["odoosaas"]), time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "the move did not finish"
        worker.run_until_idle(0.5)


def move(app, operator, tenant_id: str, target: str) -> dict:
    answer = operator.post(f"/api/v1/admin/tenants/{tenant_id}/migrate", json={"target_strategy": target})
    assert answer.status_code == 202, answer.json
    return answer.json["operation"]


def operation(app, operation_id: str) -> Operation:
    with app.extensions["odoosaas"].store.session() as db:
        return db.get(Operation, operation_id)


def healthy(app, tenant_id: str, patience: float = 30) -> bool:
    """The app answers (a worker that just started may be restarting it)."""
    deadline = time.monotonic() + patience
    while True:
        try:
            return httpx.get(tenant_row(app, tenant_id).url + "/web/health", timeout=5).status_code == 200
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_shared_to_dedicated_and_back_while_writing(app, operator):
    owner = Caller(app.test_client(), "mover@example.com")
    tenant_id = owner.create("mover").json["tenant"]["id"]
    neighbour = owner.create("neighbour").json["tenant"]["id"]
    drive(app, lambda: tenant_row(app, tenant_id).status == tenant_row(app, neighbour).status == "running")
    make_ledger(app, tenant_id)
    for first, (target, server) in enumerate((("dedicated", "ded-mover-"), ("shared", "shared-1")), 1):
        writer = Writer(app, tenant_id, first)
        writer.start()
        started = move(app, operator, tenant_id, target)
        assert owner.post(f"/api/v1/tenants/{tenant_id}/stop").status_code == 409  # not while it moves
        drive(app, lambda: operation(app, started["id"]).status in ("done", "failed"))
        done = operation(app, started["id"])
        assert done.status == "done", (done.error, done.progress)
        assert writer.check() > 20, "rows were written during the move"
        tenant = tenant_row(app, tenant_id)
        assert tenant.db_strategy == target and server_of(app, tenant_id).name.startswith(server)
        assert tenant.db_strategy_reason == ("moved:request" if target == "dedicated" else "tier:basic")
        assert healthy(app, tenant_id) and healthy(app, neighbour)
        assert done.params["downtime_seconds"] >= 0  # recorded; its target is bench/migrate.py's (P5)
        assert replication_left(app) == []
    assert [p.name for p in (app.extensions["odoosaas"].settings.data_dir / "pg").iterdir()] == ["shared-1"]
    with psycopg.connect(**admin_of(app, server_of(app, tenant_id)), dbname="postgres") as conn:
        assert conn.execute("SELECT count(*) FROM pg_database WHERE datname = 't_mover'").fetchone()[0] == 1


def test_authorisation_and_refusals(app, operator, alice):
    tenant_id = alice.create("asker").json["tenant"]["id"]
    path = f"/api/v1/admin/tenants/{tenant_id}/migrate"
    assert operator.post(path, json={"target_strategy": "dedicated"}).status_code == 409  # not running yet
    drive(app, lambda: tenant_row(app, tenant_id).status == "running")
    assert alice.post(path, json={"target_strategy": "dedicated"}).status_code == 403  # customers do not move
    assert alice.get("/api/v1/admin/migrations").status_code == 403
    assert operator.post(path, json={"target_strategy": "shared"}).status_code == 409  # already shared
    assert operator.post("/api/v1/admin/tenants/nope/migrate", json={"target_strategy": "shared"}).status_code == 404
    started = operator.post(path, json={"target_strategy": "dedicated"}).json["operation"]
    assert operator.post(path, json={"target_strategy": "dedicated"}).status_code == 409  # one at a time
    assert alice.post(f"/api/v1/tenants/{tenant_id}/stop").status_code == 409  # not while it moves
    assert operator.post(f"/api/v1/admin/migrations/{started['id']}/rollback").status_code == 409  # not switched
    assert [m["id"] for m in operator.get("/api/v1/admin/migrations").json["items"]] == [started["id"]]
    drive(app, lambda: operation(app, started["id"]).status == "done")
    listed = operator.get("/api/v1/admin/migrations").json["items"][0]
    assert listed["status"] == "done" and listed["operation"]["progress"]["done"] == 4
    assert listed["operation"]["params"]["downtime_seconds"] >= 0  # recorded; its target is bench/migrate.py's (P5)
    assert operator.post(f"/api/v1/admin/migrations/{started['id']}/rollback").status_code == 409  # source dropped
    assert alice.post(f"/api/v1/tenants/{tenant_id}/stop").status_code == 202


def test_a_table_without_a_primary_key_moves_by_dump_and_restore(app, operator):
    tenant_id = Caller(app.test_client(), "keyless@example.com").create("keyless").json["tenant"]["id"]
    drive(app, lambda: tenant_row(app, tenant_id).status == "running")
    make_ledger(app, tenant_id)
    with psycopg.connect(**tenant_db(app, tenant_id), autocommit=True) as conn:  # as Odoo's m2m tables once were
        conn.execute("CREATE TABLE tags (ledger_id int REFERENCES ledger, tag text)")
        conn.execute("INSERT INTO tags SELECT id, 'x' || id FROM ledger WHERE id % 10 = 0")
    started = move(app, operator, tenant_id, "dedicated")
    drive(app, lambda: operation(app, started["id"]).status in ("done", "failed"))
    done = operation(app, started["id"])
    assert (done.status, done.params.get("dump")) == ("done", True), done.error
    with psycopg.connect(**tenant_db(app, tenant_id)) as conn:  # on the new server, as its own role
        assert conn.execute("SELECT count(*), count(DISTINCT tag) FROM tags").fetchone() == (2000, 2000)
        assert conn.execute("SELECT count(*) FROM ledger").fetchone() == (20000,)
        conn.execute("INSERT INTO ledger (n) VALUES (1)")  # its sequence continues past the copied rows
    assert server_of(app, tenant_id).kind == "dedicated" and healthy(app, tenant_id) and replication_left(app) == []


def test_a_customer_asks_and_an_operator_decides(app, operator, alice, bob):
    tenant_id = alice.create("asker").json["tenant"]["id"]
    drive(app, lambda: tenant_row(app, tenant_id).status == "running")
    path, body = f"/api/v1/tenants/{tenant_id}/migration-requests", {"target_strategy": "dedicated", "reason": "growing"}
    assert bob.post(path, json=body).status_code == 404 and bob.get(path).status_code == 404
    asked = alice.post(path, json=body)
    assert asked.status_code == 202 and asked.json["request"]["status"] == "pending", asked.json
    assert (asked.json["request"]["reason"], asked.json["request"]["target_strategy"]) == ("growing", "dedicated")
    request_id = asked.json["request"]["id"]
    assert alice.post(path, json=body).status_code == 409  # one at a time
    assert alice.post(f"/api/v1/admin/migrations/{request_id}/approve").status_code == 403  # customers do not decide
    Worker(app.extensions["odoosaas"]).run_until_idle(5)  # a request waits for an operator
    assert operation(app, request_id).status == "requested" and tenant_row(app, tenant_id).db_strategy == "shared"
    assert [r["id"] for r in operator.get("/api/v1/admin/migrations?status=pending").json["items"]] == [request_id]
    assert operator.post(f"/api/v1/admin/migrations/{request_id}/reject").json["request"]["status"] == "rejected"
    assert operator.post(f"/api/v1/admin/migrations/{request_id}/approve").status_code == 409  # decided
    assert [r["status"] for r in alice.get(path).json["items"]] == ["rejected"]
    again = alice.post(path, json=body).json["request"]["id"]
    assert operator.post(f"/api/v1/admin/migrations/{again}/approve").json["request"]["status"] == "approved"
    drive(app, lambda: operation(app, again).status == "done")
    assert [r["status"] for r in alice.get(path).json["items"]] == ["done", "rejected"]
    assert tenant_row(app, tenant_id).db_strategy == "dedicated" and healthy(app, tenant_id)
    flagged = next(t for t in operator.get("/api/v1/admin/tenants").json["items"] if t["id"] == tenant_id)
    assert (flagged["db_strategy"], flagged["rules_strategy"]) == ("dedicated", "shared")  # the operator sees it


def test_a_tier_change_applies_its_resources_and_moves_when_its_rules_say_so(app, alice):
    from tests.inspect import app_processes
    tenant_id = alice.create("grower").json["tenant"]["id"]
    drive(app, lambda: tenant_row(app, tenant_id).status == "running")
    (before,) = app_processes(tenant_id)
    assert alice.patch(f"/api/v1/tenants/{tenant_id}", json={"tier": "gold"}).status_code == 400
    changed = alice.patch(f"/api/v1/tenants/{tenant_id}", json={"tier": "standard"})
    assert changed.status_code == 202 and changed.json["tenant"]["tier"] == "standard", changed.json
    drive(app, lambda: (t := tenant_row(app, tenant_id)).observed_generation == t.generation)
    (after,) = app_processes(tenant_id)  # started again within the standard tier's limits
    limit = next(row for row in open(f"/proc/{after}/limits") if row.startswith("Max address space"))
    assert after != before and limit.split()[3] == str(2048 * 2**20) and healthy(app, tenant_id)
    with psycopg.connect(**tenant_db(app, tenant_id, as_admin=True)) as conn:
        assert conn.execute("SELECT rolconnlimit FROM pg_roles WHERE rolname = 't_grower'").fetchone() == (40,)
    assert alice.patch(f"/api/v1/tenants/{tenant_id}", json={"tier": "premium"}).status_code == 202
    moved = alice.get(f"/api/v1/tenants/{tenant_id}/migration-requests").json["items"]
    assert [(r["status"], r["reason"]) for r in moved] == [("approved", "tier:premium")]  # no operator needed
    drive(app, lambda: operation(app, moved[0]["id"]).status == "done")
    tenant = tenant_row(app, tenant_id)
    assert (tenant.db_strategy, tenant.db_strategy_reason, tenant.tier) == ("dedicated", "tier:premium", "premium")
    alice.post(f"/api/v1/tenants/{tenant_id}/stop")
    drive(app, lambda: tenant_row(app, tenant_id).status == "stopped")
    refused = alice.patch(f"/api/v1/tenants/{tenant_id}", json={"tier": "basic"})
    assert refused.status_code == 409 and refused.json["error"]["code"] == "needs_migration"
    assert tenant_row(app, tenant_id).tier == "premium"


def test_rollback_within_the_grace_period(workdir, operator):
    app = make_app(workdir, move_grace_seconds=600)
    owner = Caller(app.test_client(), "undo@example.com")
    tenant_id = owner.create("undoer").json["tenant"]["id"]
    drive(app, lambda: tenant_row(app, tenant_id).status == "running")
    make_ledger(app, tenant_id)
    started = move(app, operator, tenant_id, "dedicated")
    drive(app, lambda: "switched" in operation(app, started["id"]).params)
    assert tenant_row(app, tenant_id).db_strategy == "dedicated" and healthy(app, tenant_id)
    answer = app.test_client().post(f"/api/v1/admin/migrations/{started['id']}/rollback", headers=operator.headers)
    assert answer.status_code == 202, answer.json
    drive(app, lambda: operation(app, started["id"]).status == "failed")
    tenant = tenant_row(app, tenant_id)
    assert (tenant.db_strategy, server_of(app, tenant_id).name) == ("shared", "shared-1") and healthy(app, tenant_id)
    with psycopg.connect(**tenant_db(app, tenant_id)) as conn:  # its role may log in again
        assert conn.execute("SELECT count(*) FROM ledger").fetchone()[0] == 20000
    listed = operator.get("/api/v1/admin/migrations").json["items"]
    assert [(r["status"], r["operation"]["error"], r["operation"]["status"]) for r in listed] == [
        ("rolled_back", "Rolled back by an operator.", "failed")]
    assert [p.name for p in (workdir / "pg").iterdir()] == ["shared-1"] and replication_left(app) == []
    app.extensions["odoosaas"].driver.close()
    app.extensions["odoosaas"].store.dispose()


def test_a_copy_that_does_not_match_is_not_switched(app, workdir, operator):
    """A row only the target has: the checksums differ, the switch gives up, the app runs on the source."""
    tenant_id = Caller(app.test_client(), "check@example.com").create("checked").json["tenant"]["id"]
    worker = start_worker(workdir, 0)
    try:
        wait_for(app, tenant_id, "running")
        make_ledger(app, tenant_id)
    finally:
        stop(worker)
    started = move(app, operator, tenant_id, "dedicated")
    crashed = start_worker(workdir, 0, "move:copy")
    assert crashed.wait(timeout=90) == 70, (workdir / "worker.log").read_text()[-2000:]
    with app.extensions["odoosaas"].store.session() as db:
        target = db.get(DbServer, operation(app, started["id"]).params["target"])
    with psycopg.connect(**admin_of(app, target), dbname="t_checked") as conn:
        conn.execute("INSERT INTO ledger (id, n) VALUES (-1, 0)")
    worker = start_worker(workdir, 0, move_switch_timeout=2)
    try:
        deadline = time.monotonic() + 60
        while operation(app, started["id"]).status != "failed":
            assert time.monotonic() < deadline, operation(app, started["id"]).progress
            time.sleep(0.2)
        assert "does not match" in operation(app, started["id"]).error
        assert tenant_row(app, tenant_id).db_strategy == "shared" and healthy(app, tenant_id)
        assert [p.name for p in (workdir / "pg").iterdir()] == ["shared-1"] and replication_left(app) == []
    finally:
        stop(worker)


@pytest.mark.parametrize("step", ["prepare", "copy", "switch", "retire"])
def test_worker_killed_after_each_step_converges(app, workdir, operator, step):
    tenant_id = Caller(app.test_client(), "crash@example.com").create("phoenix").json["tenant"]["id"]
    worker = start_worker(workdir, 0)
    try:
        wait_for(app, tenant_id, "running")
        make_ledger(app, tenant_id)
    finally:
        stop(worker)
    started = move(app, operator, tenant_id, "dedicated")
    crashed = start_worker(workdir, 0, f"move:{step}", move_grace_seconds=0)
    assert crashed.wait(timeout=90) == 70, (workdir / "worker.log").read_text()[-2000:]
    worker = start_worker(workdir, 0, move_grace_seconds=0)
    try:
        deadline = time.monotonic() + 60
        while operation(app, started["id"]).status != "done":
            assert time.monotonic() < deadline, (operation(app, started["id"]).progress, operation(app, started["id"]).error)
            time.sleep(0.2)
        assert tenant_row(app, tenant_id).db_strategy == "dedicated" and healthy(app, tenant_id)
        with psycopg.connect(**tenant_db(app, tenant_id)) as conn:
            assert conn.execute("SELECT count(*) FROM ledger").fetchone()[0] == 20000
        assert sorted(p.name for p in (workdir / "pg").iterdir()) == [server_of(app, tenant_id).name, "shared-1"]
        assert replication_left(app) == [] and databases_on_shared(app) == []
    finally:
        stop(worker)


def test_worker_killed_at_random_moments_converges(app, workdir, operator):
    """SIGKILL mid-step (a schema copy, a subscription half made, a switch half done), then a clean run."""
    tenant_id = Caller(app.test_client(), "chaos@example.com").create("chaotic").json["tenant"]["id"]
    worker = start_worker(workdir, 0)
    try:
        wait_for(app, tenant_id, "running")
        make_ledger(app, tenant_id)
    finally:
        stop(worker)
    started = move(app, operator, tenant_id, "dedicated")
    for delay in (1.5, 2.6, 3.7, 4.4):
        worker = start_worker(workdir, 0, move_grace_seconds=0)
        time.sleep(delay)
        worker.kill()
        worker.wait()
    worker = start_worker(workdir, 0, move_grace_seconds=0)
    try:
        deadline = time.monotonic() + 90
        while operation(app, started["id"]).status not in ("done", "failed"):
            assert time.monotonic() < deadline, operation(app, started["id"]).progress
            time.sleep(0.2)
        done = operation(app, started["id"])
        assert done.status == "done", (done.error, done.progress)
        assert tenant_row(app, tenant_id).db_strategy == "dedicated" and healthy(app, tenant_id)
        with psycopg.connect(**tenant_db(app, tenant_id)) as conn:
            assert conn.execute("SELECT count(*) FROM ledger").fetchone()[0] == 20000
        assert sorted(p.name for p in (workdir / "pg").iterdir()) == [server_of(app, tenant_id).name, "shared-1"]
        assert replication_left(app) == [] and databases_on_shared(app) == []
    finally:
        stop(worker)
