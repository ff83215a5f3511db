"""Provisioning benchmark on the local driver.

With the sample app (default):
P1: request -> `running`, 20 tenants one after another: p50 and p95, with a per-step breakdown
    (targets: p50 <= 1.0 s, p95 <= 2 s).
P3: 50 tenants requested at once onto one shared server (target: all running within 60 s, 0 failures).

With real Odoo (`bench/provision.py odoo`; `make odoo` installs it):
P1-odoo: request -> a JSON-RPC login with the requested admin succeeds through Traefik, 10 tenants
    one after another: p50 and p95 (target: p50 <= 5 s), per step, and the login after `running`.
    The first tenant (not counted) builds the shared server's template database.
P3-odoo: 10 tenants requested at once, each logged in.

Prints a table and one JSON line. Run: `make bench` (or `.venv/bin/python bench/provision.py [odoo]`).
"""
import json
import statistics
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

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


def odoo_login(port, sub, login, password) -> dict:
    """`/web/session/authenticate` through Traefik, as a browser on `<sub>.localhost` would."""
    response = httpx.post(f"http://127.0.0.1:{port}/web/session/authenticate", headers={"Host": f"{sub}.localhost"},
                          json={"jsonrpc": "2.0", "method": "call", "params": {
                              "db": "t_" + sub.replace("-", "_"), "login": login, "password": password}}, timeout=60)
    return {"uid": (response.json().get("result") or {}).get("uid"), "cookies": response.cookies}


def odoo_platform(**overrides):
    """A platform hosting real Odoo behind Traefik, with its worker running; returns (app, port, close)."""
    workdir, port = scratch_dir(), free_port()
    app = make_app(workdir, odoo_bin="", local_fallback_app="", traefik_port=port, free_max_instances=100,
                   **overrides)
    platform = app.extensions["odoosaas"]
    assert platform.driver.start_edge(), "no Traefik binary: make traefik"
    stop = threading.Event()
    threading.Thread(target=Worker(platform).run, args=(stop,), daemon=True).start()

    def close():
        stop.set()
        platform.driver.close()
        stop_clusters(workdir)
    return app, port, close


def provision_odoo(caller, port, sub) -> tuple[float, dict, float]:
    """Seconds from the request to a successful login, the tenant, and the login's own share."""
    started = time.perf_counter()
    tenant_id = caller.create(sub, admin_email=f"admin@{sub}.example", admin_password="admin-pass-1").json["tenant"]["id"]
    tenant = wait_running(caller, tenant_id, timeout=300)
    assert tenant["status"] == "running", tenant["status_detail"]
    running = time.perf_counter()
    while odoo_login(port, sub, f"admin@{sub}.example", "admin-pass-1")["uid"] != 2:
        assert time.perf_counter() - running < 60, "the admin cannot log in"
        time.sleep(0.05)
    done = time.perf_counter()
    return done - started, tenant, done - running


def odoo_main():
    app, port, close = odoo_platform()
    caller = Caller(app.test_client(), "bench-odoo@example.com")
    try:
        template_seconds, _, _ = provision_odoo(caller, port, "warm-up")  # builds shared-1's template
        totals, logins, steps = [], [], {}
        for i in range(10):
            seconds, tenant, login_seconds = provision_odoo(caller, port, f"seq-{i}")
            totals.append(seconds)
            logins.append(login_seconds)
            for name, value in step_seconds(tenant).items():
                steps.setdefault(name, []).append(value)
        burst, results = time.perf_counter(), []
        threads = [threading.Thread(target=lambda n=n: results.append(provision_odoo(caller, port, f"burst-{n}")))
                   for n in range(10)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        burst_seconds = time.perf_counter() - burst
    finally:
        close()
    report = {"p1_odoo_count": len(totals), "p1_odoo_p50_s": round(statistics.median(totals), 3),
              "p1_odoo_p95_s": round(percentile(totals, 0.95), 3),
              "p1_odoo_steps_p50_s": {k: round(statistics.median(v), 3) for k, v in steps.items()},
              "p1_odoo_login_after_running_p50_s": round(statistics.median(logins), 3),
              "first_tenant_with_template_build_s": round(template_seconds, 2),
              "p3_odoo_count": 10, "p3_odoo_all_logged_in_s": round(burst_seconds, 2),
              "p3_odoo_logged_in": len(results), "p3_odoo_p50_s": round(statistics.median(r[0] for r in results), 3)}
    print(f"{'figure':40} {'measured':>10} {'target':>10}")
    print(f"{'first tenant (builds the template)':40} {template_seconds:>9.2f}s")
    print(f"{'P1-odoo p50 request->login':40} {report['p1_odoo_p50_s']:>9.3f}s {'<= 5.0s':>10}")
    print(f"{'P1-odoo p95 request->login':40} {report['p1_odoo_p95_s']:>9.3f}s")
    for name, seconds in report["p1_odoo_steps_p50_s"].items():
        print(f"{'  step ' + name + ' (p50)':40} {seconds:>9.3f}s")
    print(f"{'  login after running (p50)':40} {report['p1_odoo_login_after_running_p50_s']:>9.3f}s")
    print(f"{'P3-odoo 10 at once, all logged in':40} {burst_seconds:>9.2f}s")
    print(f"{'P3-odoo logged in':40} {len(results):>10} {'10':>10}")
    print(json.dumps(report))


if __name__ == "__main__":
    odoo_main() if sys.argv[1:] == ["odoo"] else main()
