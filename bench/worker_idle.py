"""What an idle worker costs: one `claim()` (its 100 ms loop's query) with 5,000 converged tenants,
on the SQLite and the PostgreSQL store (review defect 12: it used to load every tenant, ~200 ms).

Prints a table and one JSON line. Run: `.venv/bin/python bench/worker_idle.py`.
"""
import json
import secrets
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from odoosaas.pg.clusters import Cluster, free_port  # noqa: E402
from odoosaas.reconcile.worker import Worker  # noqa: E402
from odoosaas.store.models import Tenant, User  # noqa: E402
from tests.conftest import fresh_database, make_app, scratch_dir, stop_clusters  # noqa: E402

TENANTS = 5000


def converged_fleet(app) -> None:
    p = app.extensions["odoosaas"]
    with p.store.session() as db:
        owner = User(email="fleet@example.com")
        db.add(owner)
        db.flush()
        db.add_all(Tenant(owner_id=owner.id, subdomain=f"t{i}", app="sample", tier="basic", admin_email="a@b.c",
                          secrets="", db_strategy="shared", db_strategy_reason="tier:basic", status="running",
                          observed_generation=1, generation=1) for i in range(TENANTS))


def claim_ms(app, rounds: int = 50) -> list[float]:
    worker = Worker(app.extensions["odoosaas"])
    worker.resync = {}  # past its start-up pass
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        assert worker.claim(4) == []
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def main() -> None:
    folder = scratch_dir()
    admin = {"host": "127.0.0.1", "port": free_port(), "user": "odoosaas", "password": secrets.token_urlsafe(16)}
    cluster = Cluster(folder / "store-pg")
    cluster.ensure(admin["port"], admin["user"], admin["password"])
    results = {}
    try:
        for store, url in (("sqlite", f"sqlite:///{folder / 'store.db'}"), ("postgresql", fresh_database(admin))):
            app = make_app(folder / store, database_url=url)
            converged_fleet(app)
            timings = claim_ms(app)
            results[store] = {"p50_ms": round(statistics.median(timings), 2), "max_ms": round(max(timings), 2)}
            app.extensions["odoosaas"].store.dispose()
    finally:
        cluster.destroy()
        stop_clusters(folder)
    print(f"{'store':<12}{'claim p50 ms':>14}{'max ms':>10}   ({TENANTS} converged tenants)")
    for store, row in results.items():
        print(f"{store:<12}{row['p50_ms']:>14}{row['max_ms']:>10}")
    print(json.dumps({"bench": "worker_idle", "tenants": TENANTS, **results}))


if __name__ == "__main__":
    main()
