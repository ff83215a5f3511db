"""Backups proven restorable (issue 14): real PostgreSQL clusters, the sample app (and real Odoo once), the local
folder store and a real MinIO; a real worker process killed mid-backup and mid-restore."""
import os
import re
import signal
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import httpx
import psycopg
import pytest

from odoosaas.apps import odoo
from odoosaas.pg.clusters import pg_bin
from odoosaas.reconcile import backups
from odoosaas.reconcile.worker import Worker
from odoosaas.store.models import Operation, Tenant
from tests.conftest import Caller, make_app
from tests.inspect import app_processes, tenant_row
from tests.s3_env import s3_client
from tests.test_crash import start_worker, stop, wait_for
from tests.test_moves import admin_of, server_of, tenant_db
from tests.test_web_instances import csrf, log_in


def s3_settings(server, monkeypatch) -> dict:
    """The platform's S3 setting; the endpoint and credentials in boto3's own variables (workers inherit them)."""
    for name, value in (("AWS_ENDPOINT_URL", server.endpoint_url), ("AWS_ACCESS_KEY_ID", server.access_key),
                        ("AWS_SECRET_ACCESS_KEY", server.secret_key), ("AWS_DEFAULT_REGION", server.region)):
        monkeypatch.setenv(name, value)
    return {"backup_s3": f"{server.bucket}/run-{os.getpid()}-{time.monotonic_ns()}/"}


def located(store: dict) -> tuple[str, str]:
    bucket, _, prefix = store["backup_s3"].partition("/")
    return bucket, prefix


@pytest.fixture
def store(request):
    """The folder store, or MinIO for tests parametrized with `BOTH`."""
    if getattr(request, "param", "") != "s3":
        return {}
    return s3_settings(request.getfixturevalue("s3_server"), request.getfixturevalue("monkeypatch"))


BOTH = pytest.mark.parametrize("store", ["folder", "s3"], indirect=True)


@pytest.fixture
def app(workdir, store, request):
    app = make_app(workdir, **store)
    app.s3 = request.getfixturevalue("s3_server") if store else None
    yield app
    app.extensions["odoosaas"].driver.close()
    app.extensions["odoosaas"].store.dispose()


def run(app, timeout: float = 120) -> None:
    worker = Worker(app.extensions["odoosaas"])
    worker.release_dead_host_leases()  # a worker process a test killed held some
    worker.run_until_idle(timeout)


def rows(app, tenant_id: str) -> list:
    with psycopg.connect(**tenant_db(app, tenant_id)) as conn:
        return conn.execute("SELECT * FROM ledger ORDER BY id").fetchall()


def write(app, tenant_id: str, sql: str) -> None:
    with psycopg.connect(**tenant_db(app, tenant_id), autocommit=True) as conn:
        conn.execute(sql)


def running_tenant(app, caller, name: str, count: int = 5000) -> str:
    """A running sample instance with a `ledger` of `count` rows (5,000: a dump of several sealed frames)."""
    tenant_id = caller.create(name).json["tenant"]["id"]
    run(app)
    assert tenant_row(app, tenant_id).status == "running"
    write(app, tenant_id, "CREATE TABLE ledger (id serial PRIMARY KEY, n int, note text, at timestamptz DEFAULT now());"
                          f"INSERT INTO ledger (n, note) SELECT g, repeat(md5(random()::text), 20) FROM generate_series(1, {count}) g")
    return tenant_id


def listed(caller, tenant_id: str) -> list[dict]:
    answer = caller.get(f"/api/v1/tenants/{tenant_id}/backups")
    assert answer.status_code == 200, answer.json
    return answer.json["items"]


def back_up(app, caller, tenant_id: str) -> dict:
    answer = caller.post(f"/api/v1/tenants/{tenant_id}/backups")
    assert answer.status_code == 202, answer.json
    assert answer.json["backup"]["status"] == "running" and answer.json["backup"]["kind"] == "manual"
    run(app)
    return next(item for item in listed(caller, tenant_id) if item["id"] == answer.json["backup"]["id"])


def restore(caller, tenant_id: str, backup_id: str, **body):
    return caller.post(f"/api/v1/tenants/{tenant_id}/backups/{backup_id}/restore", json=body)


def last_operation(caller, tenant_id: str, kind: str) -> dict:
    return next(o for o in caller.get(f"/api/v1/tenants/{tenant_id}/operations").json["items"] if o["kind"] == kind)


def objects(app, store: dict) -> dict[str, bytes]:
    """Every stored object, by name, in whichever store the app uses."""
    if store:
        client, (bucket, prefix) = s3_client(app.s3), located(store)
        listing = client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
        return {o["Key"][len(prefix):]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listing}
    root = app.extensions["odoosaas"].settings.data_dir / "backups"
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def overwrite(app, store: dict, name: str, data: bytes) -> None:
    if store:
        bucket, prefix = located(store)
        s3_client(app.s3).put_object(Bucket=bucket, Key=prefix + name, Body=data)
    else:
        (app.extensions["odoosaas"].settings.data_dir / "backups" / name).write_bytes(data)


def scratch_left(app, tenant_id: str) -> list:
    """Scratch databases of verification and restores left on the tenant's server."""
    with psycopg.connect(**admin_of(app, server_of(app, tenant_id)), dbname="postgres") as conn:
        return conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'v\\_%'").fetchall()


@BOTH
def test_backup_then_restore_in_place_and_into_a_new_instance(app, store, alice, workdir):
    tenant_id = running_tenant(app, alice, "keeper")
    before = rows(app, tenant_id)
    taken = back_up(app, alice, tenant_id)
    assert taken["status"] == "verified", taken
    assert taken["size_bytes"] > 0 and re.fullmatch("[0-9a-f]{64}", taken["sha256"])
    stored = objects(app, store)
    assert sorted(name.rsplit("/", 1)[1] for name in stored) == ["database", "files", "manifest"]
    assert not any(b"PGDMP" in data or b"ledger" in data for data in stored.values()), "sealed before it is stored"
    assert scratch_left(app, tenant_id) == [] and list((workdir / "backup-work").iterdir()) == []

    write(app, tenant_id, "DELETE FROM ledger WHERE n % 2 = 0; UPDATE ledger SET note = 'changed'")
    answer = restore(alice, tenant_id, taken["id"], target="in_place")
    assert answer.status_code == 202 and answer.json["operation"]["kind"] == "restore", answer.json
    run(app)
    assert last_operation(alice, tenant_id, "restore")["status"] == "done"
    assert rows(app, tenant_id) == before, "every row as it was at the backup"
    tenant = alice.get(f"/api/v1/tenants/{tenant_id}").json["tenant"]
    assert tenant["status"] == "running" and httpx.get(tenant["url"] + "/web/health").status_code == 200
    kinds = [(b["kind"], b["status"]) for b in listed(alice, tenant_id)]
    assert kinds == [("pre_restore", "verified"), ("manual", "verified")], "the state before was backed up first"

    answer = restore(alice, tenant_id, taken["id"], target="new_instance", subdomain="keeper-copy")
    assert answer.status_code == 202, answer.json
    run(app)
    copy = next(t for t in alice.get("/api/v1/tenants").json["items"] if t["subdomain"] == "keeper-copy")
    assert copy["status"] == "running" and copy["app"] == "sample" and copy["tier"] == "basic", copy
    assert rows(app, copy["id"]) == before and rows(app, tenant_id) == before
    assert httpx.get(copy["url"] + "/web/health").status_code == 200

    undo = listed(alice, tenant_id)[0]  # the pre-restore backup undoes the restore
    assert restore(alice, tenant_id, undo["id"], target="in_place").status_code == 202
    run(app)
    assert len(rows(app, tenant_id)) == 2500 and {r[2] for r in rows(app, tenant_id)} == {"changed"}


def test_a_download_link_serves_the_dump_to_anyone_holding_it_until_it_expires(workdir, alice, client):
    app = client.application
    tenant_id = running_tenant(app, alice, "fetcher")
    taken = back_up(app, alice, tenant_id)
    assert taken["download_url"].startswith("http://portal.test/api/v1/backup-downloads/")
    path = taken["download_url"].removeprefix("http://portal.test")
    answer = client.get(path)  # no bearer token: the link is the credential
    assert answer.status_code == 200 and answer.data.startswith(b"PGDMP")
    (workdir / "dl.dump").write_bytes(answer.data)
    listing = subprocess.run([pg_bin("pg_restore"), "-l", str(workdir / "dl.dump")], capture_output=True, text=True)
    assert "TABLE DATA public ledger" in listing.stdout, listing.stderr
    assert client.get(path[:-3] + "abc").status_code == 404
    assert alice.post(f"/api/v1/tenants/{tenant_id}/backups").json["backup"]["download_url"] is None, "not verified"
    app.extensions["odoosaas"].settings.backup_link_seconds = 1
    time.sleep(2.1)
    assert client.get(path).status_code == 404, "expired"


def test_the_instance_page_lists_backups_and_its_buttons_work(workdir, alice, client):
    app = client.application
    tenant_id = running_tenant(app, alice, "paged")
    log_in(client, alice.email, alice.password)
    page = client.get(f"/instances/{tenant_id}").text
    assert client.post(f"/instances/{tenant_id}/backups", data={"csrf_token": csrf(page)}).status_code == 302
    run(app)
    page = client.get(f"/instances/{tenant_id}").text
    backup_id = listed(alice, tenant_id)[0]["id"]
    assert "verified" in page and "manual" in page and listed(alice, tenant_id)[0]["download_url"][:60] in page
    bad = client.post(f"/instances/{tenant_id}/backups/{backup_id}/restore",
                      data={"csrf_token": csrf(page), "target": "new_instance", "subdomain": "no"})
    assert bad.status_code == 400
    done = client.post(f"/instances/{tenant_id}/backups/{backup_id}/restore",
                       data={"csrf_token": csrf(page), "target": "new_instance", "subdomain": "paged-copy",
                             "database_only": "on"})
    assert done.status_code == 302, done.text
    run(app)
    copy = next(t for t in alice.get("/api/v1/tenants").json["items"] if t["subdomain"] == "paged-copy")
    assert copy["status"] == "running" and rows(app, copy["id"]) == rows(app, tenant_id)


def test_a_customer_cannot_list_download_or_restore_anothers(workdir, alice, bob, client):
    app = client.application
    tenant_id = running_tenant(app, alice, "private")
    taken = back_up(app, alice, tenant_id)
    own = bob.create("nosy").json["tenant"]["id"]
    run(app)
    base = f"/api/v1/tenants/{tenant_id}/backups"
    for answer in (bob.get(base), bob.post(base), restore(bob, tenant_id, taken["id"], target="in_place"),
                   restore(bob, tenant_id, taken["id"], target="new_instance", subdomain="stolen"),
                   restore(bob, own, taken["id"], target="in_place")):  # alice's backup under bob's own instance
        assert answer.status_code == 404, answer.json
        assert answer.json["error"]["code"] == "not_found"
    assert listed(bob, own) == [] and not any(t["subdomain"] == "stolen" for t in bob.get("/api/v1/tenants").json["items"])
    assert client.get(f"{base}").status_code == 401


@BOTH
def test_a_corrupted_object_fails_verification_and_is_never_restored(app, store, alice, operator, workdir):
    tenant_id = running_tenant(app, alice, "brittle")
    crashed = start_worker(workdir, 0, "backup:dump", **store)  # the parts are stored, not yet verified
    backup_id = alice.post(f"/api/v1/tenants/{tenant_id}/backups").json["backup"]["id"]
    assert crashed.wait(timeout=90) == 70, (workdir / "worker.log").read_text()[-2000:]
    assert listed(alice, tenant_id)[0]["status"] == "running", "not good before it is verified"
    name = next(name for name in objects(app, store) if name.endswith(f"{backup_id}/database"))
    data = bytearray(objects(app, store)[name])
    data[len(data) // 2] ^= 1
    overwrite(app, store, name, bytes(data))
    run(app)
    failed = listed(alice, tenant_id)[0]
    assert failed["status"] == "failed" and "checksum" in failed["error"], failed
    refused = restore(alice, tenant_id, backup_id, target="in_place")
    assert refused.status_code == 409 and refused.json["error"]["code"] == "not_verified"
    assert failed["download_url"] is None

    good = back_up(app, alice, tenant_id)  # verified, then damaged in the store: the restore checks it again
    assert good["status"] == "verified"
    servers = operator.get("/api/v1/admin/db-servers").json["items"]
    assert [s["backups_verified"] for s in servers] == [0.5], "operators see the share of verified backups"
    before = rows(app, tenant_id)
    name = next(name for name in objects(app, store) if name.endswith(f"{good['id']}/files"))
    overwrite(app, store, name, objects(app, store)[name][:-5])
    assert restore(alice, tenant_id, good["id"], target="in_place").status_code == 202
    run(app)
    assert "checksum" in last_operation(alice, tenant_id, "restore")["error"]
    assert tenant_row(app, tenant_id).status == "running" and rows(app, tenant_id) == before, "nothing was touched"
    assert len(app_processes(tenant_id)) == 1
    assert next(b for b in listed(alice, tenant_id) if b["id"] == good["id"])["status"] == "failed"
    assert restore(alice, tenant_id, good["id"], target="in_place").status_code == 409


@pytest.mark.parametrize("fault", ["backup:dump", "restore:prepare", "restore:replace", "kill"])
def test_a_worker_killed_mid_backup_or_mid_restore_converges(workdir, alice, client, fault):
    app = client.application
    tenant_id = running_tenant(app, alice, "phoenix", count=200_000)
    taken = back_up(app, alice, tenant_id)
    before = rows(app, tenant_id)
    write(app, tenant_id, "DELETE FROM ledger WHERE n > 100")
    app.extensions["odoosaas"].driver.close()  # the worker processes run the app from here on
    worker = start_worker(workdir, 0, "" if fault == "kill" else fault)
    if fault.startswith("backup"):
        alice.post(f"/api/v1/tenants/{tenant_id}/backups")
    else:
        assert restore(alice, tenant_id, taken["id"], target="in_place").status_code == 202
    if fault == "kill":  # SIGKILL in the middle of the restore's steps
        deadline = time.monotonic() + 60
        while tenant_row(app, tenant_id).status != "maintenance" and time.monotonic() < deadline:
            time.sleep(0.01)
        worker.send_signal(signal.SIGKILL)
        assert tenant_row(app, tenant_id).status == "maintenance", "killed while the database is replaced"
    assert worker.wait(timeout=90) in (70, -9), (workdir / "worker.log").read_text()[-2000:]
    worker = start_worker(workdir, 0)
    try:
        deadline = time.monotonic() + 90
        while any(b["status"] == "running" for b in listed(alice, tenant_id)) or (
                not fault.startswith("backup") and last_operation(alice, tenant_id, "restore")["status"] != "done"):
            assert time.monotonic() < deadline, (workdir / "worker.log").read_text()[-3000:]
            time.sleep(0.2)
        wait_for(app, tenant_id, "running")
        assert all(b["status"] == "verified" for b in listed(alice, tenant_id))
        assert scratch_left(app, tenant_id) == []
        if not fault.startswith("backup"):
            assert rows(app, tenant_id) == before
            assert len(app_processes(tenant_id)) == 1
    finally:
        stop(worker)
    assert list((workdir / "backup-work").iterdir()) == []


def generated(*ages_and_statuses) -> list:
    start = datetime(2026, 3, 31, 23, 0, tzinfo=timezone.utc)
    return [SimpleNamespace(id=f"b{i}", created_at=start - timedelta(hours=hours), status=status)
            for i, (hours, status) in enumerate(ages_and_statuses)]


def test_retention_keeps_seven_daily_four_weekly_three_monthly():
    """One verified backup every 6 hours for 120 days, newest first, the newest on Tuesday 2026-03-31 (ISO week 14)."""
    records = generated(*((6 * i, "done") for i in range(480)))
    kept = [b for b in records if b not in backups.expired(records, {"daily": 7, "weekly": 4, "monthly": 3})]
    at = lambda month, day: datetime(2026, month, day, 23, tzinfo=timezone.utc)  # noqa: E731
    assert [b.created_at for b in kept] == [
        *(at(3, 31) - timedelta(hours=hours) for hours in (0, 6, 12, 18)),  # all of the newest's last 24 hours
        *(at(3, day) for day in range(30, 24, -1)),  # the newest of each of the last 7 days (weeks 14 and 13 too)
        at(3, 22), at(3, 15),  # the newest of weeks 12 and 11
        at(2, 28), at(1, 31)]  # of February and January (March's is the newest)


def test_retention_keeps_what_is_running_and_recent_failures_only():
    records = generated((0, "running"), (1, "failed"), (2, "failed"), (3, "done"), (4, "failed"), (30, "done"))
    gone = {b.id for b in backups.expired(records, {"daily": 1, "weekly": 0, "monthly": 0})}
    assert gone == {"b2", "b4", "b5"}, "one failure newer than the newest verified, the running one, the newest day"
    assert {b.id for b in backups.expired(records, {"daily": 0, "weekly": 0, "monthly": 1})} == {
        "b1", "b2", "b4", "b5"}, "a deleted instance's: its newest verified only"
    assert {b.id for b in backups.expired(records, {"daily": 0, "weekly": 0, "monthly": 0})} == {
        "b1", "b2", "b3", "b4", "b5"}


def test_the_sweep_schedules_per_tier_and_drops_expired_and_deleted_instances_backups(workdir, alice, client):
    app = client.application
    platform = app.extensions["odoosaas"]
    tenant_id, premium = running_tenant(app, alice, "swept"), alice.create("swept-pro", tier="premium").json["tenant"]
    run(app)
    platform.settings.backup_every = {"basic": 0, "premium": 3600}
    backups.sweep(platform)
    assert listed(alice, premium["id"]) == [], "the first is due a period after creation"
    with platform.store.session() as db:
        db.get(Tenant, premium["id"]).created_at -= timedelta(hours=2)
    backups.sweep(platform)
    assert listed(alice, tenant_id) == [] and [b["kind"] for b in listed(alice, premium["id"])] == ["scheduled"]
    backups.sweep(platform)
    assert len(listed(alice, premium["id"])) == 1, "not again within the interval"
    run(app)
    # two more verified backups of `swept`, the older made a day older: retention keeps one a day
    first, second = back_up(app, alice, tenant_id), back_up(app, alice, tenant_id)
    with platform.store.session() as db:
        db.get(Operation, first["id"]).created_at -= timedelta(days=2)
        db.get(Operation, second["id"]).created_at -= timedelta(hours=1)
    platform.settings.backup_keep = {"daily": 1, "weekly": 0, "monthly": 0}
    backups.sweep(platform)
    assert [b["id"] for b in listed(alice, tenant_id)] == [second["id"]]
    assert not any(first["id"] in name for name in objects(app, {})), "its objects went first"
    # deletion takes a last backup, kept for backup_keep_deleted_days
    platform.settings.backup_keep = {"daily": 7, "weekly": 4, "monthly": 3}
    alice.delete(f"/api/v1/tenants/{tenant_id}")
    run(app)
    assert tenant_row(app, tenant_id).status == "deleted"
    with platform.store.session() as db:
        kinds = [(b.params["kind"], b.status) for b in backups.of(db, tenant_id)]
    assert kinds == [("pre_delete", "done"), ("manual", "done")]
    backups.sweep(platform)
    with platform.store.session() as db:
        assert [b.params["kind"] for b in backups.of(db, tenant_id)] == ["pre_delete"]
    platform.settings.backup_keep_deleted_days = 0
    backups.sweep(platform)
    with platform.store.session() as db:
        assert backups.of(db, tenant_id) == []
    assert not any(tenant_id in name for name in objects(app, {}))


def test_s3_credentials_appear_in_no_response_log_or_argv(workdir, s3_server, monkeypatch):
    store = s3_settings(s3_server, monkeypatch)
    app = make_app(workdir, **store)
    caller = Caller(app.test_client(), "secretive@example.com")
    tenant_id = running_tenant(app, caller, "secretive")
    app.extensions["odoosaas"].driver.close()
    worker = start_worker(workdir, 0, **store)
    answers = [caller.post(f"/api/v1/tenants/{tenant_id}/backups")]
    argv, deadline = set(), time.monotonic() + 60
    while listed(caller, tenant_id)[0]["status"] == "running" and time.monotonic() < deadline:
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                argv.add(cmdline.read_bytes())
            except OSError:
                pass
    backup_id = listed(caller, tenant_id)[0]["id"]
    answers += [caller.get(f"/api/v1/tenants/{tenant_id}/backups"), restore(caller, tenant_id, backup_id, target="in_place"),
                caller.get("/api/openapi.json")]
    deadline = time.monotonic() + 60
    while last_operation(caller, tenant_id, "restore")["status"] != "done" and time.monotonic() < deadline:
        time.sleep(0.2)
    answers += [caller.get(f"/api/v1/tenants/{tenant_id}/operations"), caller.get(f"/api/v1/tenants/{tenant_id}")]
    stop(worker)
    assert last_operation(caller, tenant_id, "restore")["status"] == "done"
    assert any(b"pg_dump" in a or b"pg_restore" in a for a in argv), "the processes were seen"
    log = (workdir / "worker.log").read_bytes() + b"".join(p.read_bytes() for p in (workdir / "logs").glob("*"))
    for secret in (s3_server.secret_key, s3_server.access_key):
        assert not any(secret.encode() in a for a in argv)
        assert secret.encode() not in log
        assert not any(secret in a.text for a in answers)
    app.extensions["odoosaas"].store.dispose()


@pytest.mark.skipif(not odoo.odoo_bin().is_file(), reason="Odoo is not installed: run `make odoo`")
def test_an_odoo_backup_restores_into_a_neutralised_copy(workdir):
    app = make_app(workdir, odoo_bin="", local_fallback_app="")
    owner = Caller(app.test_client(), "odoo-backups@example.com")
    tenant_id = owner.create("bookish", admin_email="boss@example.com").json["tenant"]["id"]
    run(app, 300)
    spec_db = tenant_db(app, tenant_id)
    with psycopg.connect(**spec_db, autocommit=True) as conn:
        conn.execute("INSERT INTO res_partner (name, active, type, is_company) VALUES ('Kept Ltd', true, 'contact', true)")
        conn.execute("UPDATE ir_cron SET active = true")
    filestore = app.extensions["odoosaas"].driver.workdir(tenant_row(app, tenant_id)) / "filestore" / "filestore"
    (filestore / "t_bookish" / "ab").mkdir(parents=True, exist_ok=True)
    (filestore / "t_bookish" / "ab" / "abcdef").write_bytes(b"an attachment")
    taken = back_up(app, owner, tenant_id)
    assert taken["status"] == "verified", taken
    assert restore(owner, tenant_id, taken["id"], target="new_instance", subdomain="bookish-staging").status_code == 202
    run(app, 300)
    copy = next(t for t in owner.get("/api/v1/tenants").json["items"] if t["subdomain"] == "bookish-staging")
    assert copy["status"] == "running", copy
    with psycopg.connect(**tenant_db(app, copy["id"])) as conn:
        assert conn.execute("SELECT count(*) FROM res_partner WHERE name = 'Kept Ltd'").fetchone()[0] == 1
        params = dict(conn.execute("SELECT key, value FROM ir_config_parameter").fetchall())
        active_crons = conn.execute("SELECT count(*) FROM ir_cron WHERE active").fetchone()[0]
    with psycopg.connect(**spec_db) as conn:
        original = dict(conn.execute("SELECT key, value FROM ir_config_parameter").fetchall())
    assert params["database.is_neutralized"] == "true" and active_crons <= 1  # Odoo keeps its autovacuum
    assert params["database.secret"] != original["database.secret"]
    assert params["odoosaas.tenant"] == copy["id"] and params["web.base.url"] == "http://bookish-staging.localhost"
    copied = app.extensions["odoosaas"].driver.workdir(tenant_row(app, copy["id"])) / "filestore" / "filestore"
    assert (copied / "t_bookish_staging" / "ab" / "abcdef").read_bytes() == b"an attachment"
    body = {"jsonrpc": "2.0", "params": {"db": "t_bookish_staging", "login": "boss@example.com",
                                         "password": "admin-pass-1"}}
    assert "result" in httpx.post(copy["url"] + "/web/session/authenticate", json=body, timeout=30).json()
    app.extensions["odoosaas"].driver.close()
    app.extensions["odoosaas"].store.dispose()
