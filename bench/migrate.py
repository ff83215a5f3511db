"""P5: move a tenant holding generated data shared → dedicated → shared, on the local driver with the sample app.

Reports, each way: the copy throughput (prepare + copy steps: schema and logical replication's initial copy, while
the app runs) against a plain `pg_dump -Fc | pg_restore` of the same database on the same machine (goal >= 0.8x),
and the downtime seen by a client polling the app's health every 100 ms (goal <= 10 s whatever the size).

Run: `.venv/bin/python bench/migrate.py [MB]` (default 1000 MB of generated rows, about 1.1 GB on disk; about two
minutes on a 2-core machine). Prints a table and one JSON line.
"""
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
import psycopg  # noqa: E402

from odoosaas.pg.clusters import pg_bin  # noqa: E402
from tests.conftest import Caller, make_app, scratch_dir, stop_clusters  # noqa: E402
from tests.test_moves import drive, operation, server_of, tenant_db, tenant_row  # noqa: E402


class Poller(threading.Thread):
    """GET /web/health every 100 ms; the longest run of failures is the downtime."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.halt, self.longest, self.down_since = url, threading.Event(), 0.0, None

    def run(self) -> None:
        while not self.halt.is_set():
            try:
                ok = httpx.get(self.url, timeout=1).status_code == 200
            except httpx.HTTPError:
                ok = False
            now = time.monotonic()
            if not ok and self.down_since is None:
                self.down_since = now
            if ok and self.down_since is not None:
                self.longest, self.down_since = max(self.longest, now - self.down_since), None
            time.sleep(0.1)


def fill(app, tenant_id: str, megabytes: int) -> int:
    with psycopg.connect(**tenant_db(app, tenant_id), autocommit=True) as conn:
        conn.execute("CREATE TABLE bulk (id bigserial PRIMARY KEY, note text NOT NULL, n int NOT NULL)")
        rows = megabytes * 1024 * 1024 // 250
        conn.execute("INSERT INTO bulk (note, n) SELECT md5(g::text) || repeat('x', 180), g FROM generate_series(1, %s) g",
                     (rows,))
        conn.execute("VACUUM ANALYZE bulk")
        return conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]


def dump_restore(app, tenant_id: str) -> float:
    """pg_dump -Fc | pg_restore of the tenant's database into a scratch database on the same server."""
    source = tenant_db(app, tenant_id, as_admin=True)
    env = {**os.environ, "PGPASSWORD": source["password"]}
    where = ["-h", source["host"], "-p", str(source["port"]), "-U", source["user"]]
    with psycopg.connect(**{**source, "dbname": "postgres"}, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS bench_restore")
        conn.execute("CREATE DATABASE bench_restore")
    started = time.perf_counter()
    dump = subprocess.Popen([pg_bin("pg_dump"), *where, "-Fc", source["dbname"]], stdout=subprocess.PIPE, env=env)
    subprocess.run([pg_bin("pg_restore"), *where, "-d", "bench_restore", "--no-owner"], stdin=dump.stdout, env=env,
                   check=True)
    dump.wait()
    elapsed = time.perf_counter() - started
    with psycopg.connect(**{**source, "dbname": "postgres"}, autocommit=True) as conn:
        conn.execute("DROP DATABASE bench_restore")
    return elapsed


def seconds(steps: list, *names: str) -> float:
    parse = datetime.fromisoformat
    return sum((parse(s["finished_at"]) - parse(s["started_at"])).total_seconds() for s in steps if s["name"] in names)


def main(megabytes: int = 1000) -> None:
    folder = scratch_dir()
    app = make_app(folder, move_grace_seconds=0)
    platform = app.extensions["odoosaas"]
    try:
        owner = Caller(app.test_client(), "bench@example.com")
        tenant_id = owner.create("bulky").json["tenant"]["id"]
        drive(app, lambda: tenant_row(app, tenant_id).status == "running")
        size = fill(app, tenant_id, megabytes)
        platform.auth.ensure_operator("ops@example.com", "operator-pass")
        token = app.test_client().post("/api/v1/auth/login", json={"email": "ops@example.com",
                                                                   "password": "operator-pass"}).json["access_token"]
        results = []
        for target in ("dedicated", "shared"):
            baseline = dump_restore(app, tenant_id)
            poller = Poller(tenant_row(app, tenant_id).url + "/web/health")
            poller.start()
            answer = app.test_client().post(f"/api/v1/admin/tenants/{tenant_id}/migrate",
                                            json={"target_strategy": target}, headers={"Authorization": f"Bearer {token}"})
            started = answer.json["operation"]["id"]
            drive(app, lambda: operation(app, started).status in ("done", "failed"), timeout=3600)
            time.sleep(1)
            poller.halt.set()
            poller.join()
            done = operation(app, started)
            assert done.status == "done", done.error
            copy = seconds(done.progress, "prepare", "copy")
            results.append({"to": target, "server": server_of(app, tenant_id).name, "db_mb": round(size / 2**20),
                            "copy_s": round(copy, 2), "copy_mb_s": round(size / 2**20 / copy, 1),
                            "dump_restore_s": round(baseline, 2), "copy_vs_dump_restore": round(baseline / copy, 2),
                            "switch_s": round(seconds(done.progress, "switch"), 2),
                            "downtime_s": round(poller.longest, 2),
                            "downtime_recorded_s": done.params["downtime_seconds"]})
        print(f"{'to':10} {'MB':>6} {'copy s':>8} {'MB/s':>7} {'dump|restore s':>15} {'ratio':>6} {'downtime s':>11}")
        for r in results:
            print(f"{r['to']:10} {r['db_mb']:>6} {r['copy_s']:>8} {r['copy_mb_s']:>7} {r['dump_restore_s']:>15} "
                  f"{r['copy_vs_dump_restore']:>6} {r['downtime_s']:>11}")
        print(json.dumps({"benchmark": "P5-migrate", "megabytes": megabytes, "moves": results}))
    finally:
        platform.driver.close()
        platform.store.dispose()
        stop_clusters(folder)
        shutil.rmtree(folder, ignore_errors=True)  # a gigabyte or two


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
