"""Backups proven restorable (issue 14): real PostgreSQL clusters, the sample app (and real Odoo once), the local
folder store and a real MinIO; a real worker process killed mid-backup and mid-restore."""
import json
import os
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import httpx
import psycopg
import pytest

from odoosaas.pg.clusters import pg_bin
from odoosaas.reconcile import backups as backup_steps
from odoosaas.reconcile.worker import Worker
from odoosaas.store.models import Operation
from tests.conftest import Caller, make_app
from tests.inspect import app_processes, tenant_row
from tests.s3_env import s3_client
from tests.test_crash import start_worker, stop, wait_for
from tests.test_moves import tenant_db


def s3_settings(server) -> dict:
    return {"backup_s3_bucket": server.bucket, "backup_s3_endpoint": server.endpoint_url,
            "backup_s3_access_key": server.access_key, "backup_s3_secret_key": server.secret_key,
            "backup_s3_prefix": f"run-{os.getpid()}-{time.monotonic_ns()}/"}


@pytest.fixture(params=["folder", "s3"])
def store(request):
    return s3_settings(request.getfixturevalue("s3_server")) if request.param == "s3" else {}


@pytest.fixture
def app(workdir, store):
    app = make_app(workdir, **store)
    yield app
    app.extensions["odoosaas"].driver.close()
    app.extensions["odoosaas"].store.dispose()


def run(app, timeout: float = 120) -> None:
    Worker(app.extensions["odoosaas"]).run_until_idle(timeout)


def rows(app, tenant_id: str) -> list:
    with psycopg.connect(**tenant_db(app, tenant_id)) as conn:
        return conn.execute("SELECT * FROM ledger ORDER BY id").fetchall()


def write(app, tenant_id: str, sql: str) -> None:
    with psycopg.connect(**tenant_db(app, tenant_id), autocommit=True) as conn:
        conn.execute(sql)


def running_tenant(app, caller, name: str) -> str:
    tenant_id = caller.create(name).json["tenant"]["id"]
    run(app)
    assert tenant_row(app, tenant_id).status == "running"
    write(app, tenant_id, "CREATE TABLE ledger (id serial PRIMARY KEY, n int, note text, at timestamptz DEFAULT now());"
                          "INSERT INTO ledger (n, note) SELECT g, md5(g::text) FROM generate_series(1, 5000) g")
    return tenant_id


def back_up(app, caller, tenant_id: str) -> dict:
    answer = caller.post(f"/api/v1/tenants/{tenant_id}/backups")
    assert answer.status_code == 202, answer.json
    run(app)
    return backup(caller, tenant_id, answer.json["backup"]["id"])


def backup(caller, tenant_id: str, backup_id: str) -> dict:
    items = caller.get(f"/api/v1/tenants/{tenant_id}/backups").json["items"]
    return next(item for item in items if item["id"] == backup_id)


def test_backup_then_restore_in_place_and_into_a_new_instance(app, alice):
    tenant_id = running_tenant(app, alice, "keeper")
    before = rows(app, tenant_id)
    taken = back_up(app, alice, tenant_id)
    assert taken["status"] == "verified", taken
    assert taken["kind"] == "manual" and taken["size_bytes"] > 0 and len(taken["sha256"]) == 64

    write(app, tenant_id, "DELETE FROM ledger WHERE n % 2 = 0; UPDATE ledger SET note = 'changed'")
    answer = alice.post(f"/api/v1/tenants/{tenant_id}/backups/{taken['id']}/restore", json={"target": "in_place"})
    assert answer.status_code == 202, answer.json
    run(app)
    restored = alice.get(f"/api/v1/tenants/{tenant_id}/operations").json["items"][0]
    assert restored["status"] == "done", restored
    assert rows(app, tenant_id) == before, "every row as it was at the backup"
    assert tenant_row(app, tenant_id).status == "running"
    assert httpx.get(alice.get(f"/api/v1/tenants/{tenant_id}").json["tenant"]["url"] + "/web/health").status_code == 200
    kinds = [b["kind"] for b in alice.get(f"/api/v1/tenants/{tenant_id}/backups").json["items"]]
    assert kinds == ["pre_restore", "manual"], "the state before the restore was backed up first"

    answer = alice.post(f"/api/v1/tenants/{tenant_id}/backups/{taken['id']}/restore",
                        json={"target": "new_instance", "subdomain": "keeper-copy"})
    assert answer.status_code == 202, answer.json
    run(app)
    copy = next(t for t in alice.get("/api/v1/tenants").json["items"] if t["subdomain"] == "keeper-copy")
    assert copy["status"] == "running", copy
    assert rows(app, copy["id"]) == before
    assert rows(app, tenant_id) == before
