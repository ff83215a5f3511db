"""Provisioning benchmark on the local driver with the sample app.

P1: request -> `running`, 20 tenants one after another: p50 and p95, with a per-step breakdown
    (targets: p50 <= 1.0 s, p95 <= 2 s).
P3: 50 tenants requested at once onto one shared server (target: all running within 60 s, 0 failures).

Prints a table and one JSON line. Run: `make bench` (or `.venv/bin/python bench/provision.py`).
"""
import json
import statistics
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from odoosaas.pg.clusters import free_port  # noqa: E402
from odoosaas.reconcile.worker import Worker  # noqa: E402
from tests.conftest import Caller, make_app, scratch_dir, stop_clusters  # noqa: E402


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def wait_running(caller, tenant_id, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tenant = caller.get(f"/api/v1/tenants/{tenant_id}").json["tenant"]
        if tenant["status"] in ("running", "failed"):
            return tenant
        time.sleep(0.01)
    return tenant


def step_seconds(tenant):
    parse = datetime.fromisoformat
    return {s["name"]: (parse(s["finished_at"]) - parse(s["started_at"])).total_seconds()
            for s in tenant["progress"]["steps"] if s["started_at"] and s["finished_at"]}


def p1(caller, count=20):
    totals, steps = [], {}
    for i in range(count):
        started = time.perf_counter()
        tenant_id = caller.create(f"seq-{i}").json["tenant"]["id"]
        tenant = wait_running(caller, tenant_id)
        totals.append(time.perf_counter() - started)
        assert tenant["status"] == "running", tenant["status_detail"]
        for name, seconds in step_seconds(tenant).items():
            steps.setdefault(name, []).append(seconds)
    return totals, {name: statistics.median(values) for name, values in steps.items()}


def p3(app, count=50):
    callers = [Caller(app.test_client(), f"burst{i}@example.com") for i in range(count // 5)]
    started = time.perf_counter()
    ids, threads = [], []

    def ask(caller, names):
        for name in names:
            ids.append((caller, caller.create(name).json["tenant"]["id"]))
    for n, caller in enumerate(callers):
        threads.append(threading.Thread(target=ask, args=(caller, [f"burst-{n}-{k}" for k in range(5)])))
        threads[-1].start()
    for thread in threads:
        thread.join()
    results = [wait_running(caller, tenant_id) for caller, tenant_id in ids]
    elapsed = time.perf_counter() - started
    failures = sum(t["status"] != "running" for t in results)
    servers = {t["db_server"] for t in results}
    return elapsed, failures, servers


def main():
    workdir = scratch_dir()
    app = make_app(workdir, traefik_port=free_port(), free_max_instances=100)
    platform = app.extensions["odoosaas"]
    routed = platform.driver.start_edge()
    stop = threading.Event()
    threading.Thread(target=Worker(platform).run, args=(stop,), daemon=True).start()
    caller = Caller(app.test_client(), "bench@example.com")
    warm = wait_running(caller, caller.create("warm-up").json["tenant"]["id"])  # the first makes shared-1
    assert warm["status"] == "running", warm["status_detail"]
    totals, steps = p1(caller)
    burst_seconds, failures, servers = p3(app)
    stop.set()
    platform.driver.close()
    stop_clusters(workdir)
    report = {"p1_count": len(totals), "p1_p50_s": round(statistics.median(totals), 3),
              "p1_p95_s": round(percentile(totals, 0.95), 3), "p1_steps_p50_s": {k: round(v, 3) for k, v in steps.items()},
              "p3_count": 50, "p3_all_running_s": round(burst_seconds, 2), "p3_failures": failures,
              "p3_servers": sorted(servers), "traefik": routed}
    print(f"{'figure':32} {'measured':>10} {'target':>10}")
    print(f"{'P1 p50 request->running':32} {report['p1_p50_s']:>9.3f}s {'<= 1.0s':>10}")
    print(f"{'P1 p95 request->running':32} {report['p1_p95_s']:>9.3f}s {'<= 2.0s':>10}")
    for name, seconds in report["p1_steps_p50_s"].items():
        print(f"{'  step ' + name + ' (p50)':32} {seconds:>9.3f}s")
    print(f"{'P3 50 at once, all running':32} {report['p3_all_running_s']:>9.2f}s {'<= 60s':>10}")
    print(f"{'P3 failures':32} {failures:>10} {'0':>10}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
