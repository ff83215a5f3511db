"""Backup and restore of a tenant holding generated data, on the local driver with the sample app (issue 14).

Reports the backup's dump step (pg_dump -Fc in a snapshot, every table counted and checksummed, the tar, each part
sealed and stored) and its verify step (every part fetched, checked and unsealed, restored into a scratch database,
every table compared), and a restore in place (its replace step: fetch, check, drop, pg_restore -j2; after the
pre-restore backup), against a plain `pg_dump -Fc` to a file and a plain `pg_restore` of it into a new database on the
same server (goal: backup and restore >= 0.8x their throughput).

Run: `.venv/bin/python bench/backup.py [MB] [folder|s3]` (default 1000 MB of generated rows, about 1.1 GB on disk, and
the folder store; `s3` starts MinIO as the tests do, `testbed/minio/build.sh`). Prints a table and one JSON line.
"""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg  # noqa: E402

from bench.migrate import fill, seconds  # noqa: E402
from odoosaas.pg.clusters import pg_bin  # noqa: E402
from tests.conftest import Caller, make_app, scratch_dir, stop_clusters  # noqa: E402
from tests.s3_env import build_minio, s3_client, start_minio, stop_minio  # noqa: E402
from tests.test_moves import drive, operation, tenant_db, tenant_row  # noqa: E402


def plain(app, tenant_id: str, folder: Path) -> tuple[float, float]:
    """pg_dump -Fc of the tenant's database to a file, then pg_restore of it into a new database: seconds each."""
    source = tenant_db(app, tenant_id, as_admin=True)
    env = {**os.environ, "PGPASSWORD": source["password"]}
    where = ["-h", source["host"], "-p", str(source["port"]), "-U", source["user"]]
    with psycopg.connect(**{**source, "dbname": "postgres"}, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS bench_restore")
        conn.execute("CREATE DATABASE bench_restore")
    started = time.perf_counter()
    subprocess.run([pg_bin("pg_dump"), *where, "-Fc", "-f", str(folder / "plain.dump"), source["dbname"]], env=env,
                   check=True)
    dumped = time.perf_counter()
    subprocess.run([pg_bin("pg_restore"), *where, "-d", "bench_restore", "--no-owner", str(folder / "plain.dump")],
                   env=env, check=True)
    restored = time.perf_counter()
    with psycopg.connect(**{**source, "dbname": "postgres"}, autocommit=True) as conn:
        conn.execute("DROP DATABASE bench_restore")
    (folder / "plain.dump").unlink()
    return dumped - started, restored - dumped


def finished(app, operation_id: str):
    drive(app, lambda: operation(app, operation_id).status in ("done", "failed"), timeout=7200)
    done = operation(app, operation_id)
    assert done.status == "done", done.error
    return done


def main(megabytes: int = 1000, where: str = "folder") -> None:
    folder, minio = scratch_dir(), None
    settings = {}
    if where == "s3":
        (folder / "minio").mkdir()
        minio, url = start_minio(build_minio(), folder / "minio", "bench-user", "bench-secret-key-1")
        settings = {"backup_s3": "bench"}
        os.environ.update(AWS_ENDPOINT_URL=url, AWS_ACCESS_KEY_ID="bench-user", AWS_SECRET_ACCESS_KEY="bench-secret-key-1")
        s3_client(type("S3", (), {"endpoint_url": url, "region": "us-east-1", "access_key": "bench-user",
                                  "secret_key": "bench-secret-key-1"})).create_bucket(Bucket="bench")
    app = make_app(folder, **settings)
    platform = app.extensions["odoosaas"]
    try:
        owner = Caller(app.test_client(), "bench@example.com")
        tenant_id = owner.create("bulky").json["tenant"]["id"]
        drive(app, lambda: tenant_row(app, tenant_id).status == "running")
        size = fill(app, tenant_id, megabytes)
        mb = size / 2**20
        dump_s, restore_s = plain(app, tenant_id, folder)
        backup = finished(app, owner.post(f"/api/v1/tenants/{tenant_id}/backups").json["backup"]["id"])
        answer = owner.post(f"/api/v1/tenants/{tenant_id}/backups/{backup.id}/restore", json={"target": "in_place"})
        restored = finished(app, answer.json["operation"]["id"])
        with psycopg.connect(**tenant_db(app, tenant_id)) as conn:
            assert conn.execute("SELECT count(*) FROM bulk").fetchone()[0] == megabytes * 1024 * 1024 // 250
        ours = {"backup_dump_s": seconds(backup.progress, "dump"), "verify_s": seconds(backup.progress, "verify"),
                "restore_replace_s": seconds(restored.progress, "replace"),
                "restore_total_s": seconds(restored.progress, "prepare", "replace", "start")}
        result = {"benchmark": "backup", "store": where, "db_mb": round(mb), "sealed_mb": round(sum(
            part["size"] for part in backup.params["parts"].values()) / 2**20),
                  "pg_dump_s": round(dump_s, 2), "pg_restore_s": round(restore_s, 2),
                  **{key: round(value, 2) for key, value in ours.items()},
                  "backup_vs_pg_dump": round(dump_s / ours["backup_dump_s"], 2),
                  "restore_vs_pg_restore": round(restore_s / ours["restore_replace_s"], 2)}
        print(f"{'':28} {'seconds':>8} {'MB/s':>7}")
        for label, key in (("pg_dump -Fc (plain)", "pg_dump_s"), ("backup: dump step", "backup_dump_s"),
                           ("pg_restore (plain)", "pg_restore_s"), ("restore: replace step", "restore_replace_s"),
                           ("backup: verify step", "verify_s"), ("restore: all steps", "restore_total_s")):
            print(f"{label:28} {result[key]:>8} {mb / result[key]:>7.1f}")
        print(f"backup vs pg_dump {result['backup_vs_pg_dump']}x, restore vs pg_restore "
              f"{result['restore_vs_pg_restore']}x (goal >= 0.8x)")
        print(json.dumps(result))
    finally:
        platform.driver.close()
        platform.store.dispose()
        stop_clusters(folder)
        if minio:
            stop_minio(minio)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000, sys.argv[2] if len(sys.argv) > 2 else "folder")
