"""Concurrent users on one Odoo tenant (basic tier) through Traefik.

10 logins at the same moment first (how many fail), then 10 users log in one after another
(JSON-RPC `/web/session/authenticate`), and each loops for 60 s on typical
backend calls: `search_read` on res.partner, `read` of one partner, and `web_search_read` of the
contacts list view. Prints requests/s, p50/p95/p99 latency and errors as a table and one JSON line.

Run: `.venv/bin/python bench/odoo_users.py [--users 10] [--seconds 60]` (`make bench`).
"""
import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.provision import odoo_platform, percentile, provision_odoo  # noqa: E402
from tests.conftest import Caller  # noqa: E402
from tests.inspect import app_processes  # noqa: E402

SUB, LOGIN, PASSWORD = "busy", "admin@busy.example", "admin-pass-1"
LIST_SPEC = {"display_name": {}, "email": {}, "phone": {}, "city": {}, "country_id": {"fields": {"display_name": {}}}}
CALLS = [  # (name, model, method, args, kwargs)
    ("search_read", "res.partner", "search_read", [[]], {"fields": ["name", "email", "phone"], "limit": 80}),
    ("read", "res.partner", "read", [[3]], {"fields": ["name", "email", "phone", "street", "city", "country_id"]}),
    ("web_search_read", "res.partner", "web_search_read", [], {"domain": [], "specification": LIST_SPEC,
                                                              "limit": 80, "order": "name"}),
]


def seed_partners(client, count=200) -> None:
    call(client, "res.partner", "create", [[{"name": f"Partner {i}", "email": f"p{i}@example.com",
                                             "phone": f"+1 555 {i:04d}", "city": "Springfield"} for i in range(count)]], {})


def call(client, model, method, args, kwargs) -> dict:
    response = client.post("/web/dataset/call_kw", json={"jsonrpc": "2.0", "method": "call", "params": {
        "model": model, "method": method, "args": args, "kwargs": kwargs}})
    response.raise_for_status()
    body = response.json()
    if "error" in body:
        raise RuntimeError(body["error"].get("data", {}).get("name") or body["error"].get("message"))
    return body["result"]


def user_client(port) -> httpx.Client:
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Host": f"{SUB}.localhost"}, timeout=60)
    response = client.post("/web/session/authenticate", json={"jsonrpc": "2.0", "method": "call", "params": {
        "db": "t_" + SUB, "login": LOGIN, "password": PASSWORD}})
    assert (response.json().get("result") or {}).get("uid") == 2, response.text[:300]
    return client


def login_burst(port, count) -> int:
    """`count` logins at the same moment; how many fail (each borrows up to 3 pooled connections)."""
    failures = []

    def one():
        try:
            user_client(port).close()
        except (AssertionError, httpx.HTTPError):
            failures.append(1)
    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(failures)


def user_loop(client, seconds, latencies, errors, lock) -> None:
    deadline, n = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        name, *request = CALLS[n % len(CALLS)]
        n += 1
        started = time.perf_counter()
        try:
            call(client, *request)
            with lock:
                latencies.setdefault(name, []).append(time.perf_counter() - started)
        except (httpx.HTTPError, RuntimeError) as exc:
            with lock:
                errors.append(f"{name}: {exc}"[:200])
    client.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=60)
    options = parser.parse_args()
    app, port, close = odoo_platform()
    try:
        caller = Caller(app.test_client(), "bench-users@example.com")
        provisioned, tenant, _ = provision_odoo(caller, port, SUB)
        seed_partners(user_client(port))
        burst_failures = login_burst(port, options.users)
        clients = [user_client(port) for _ in range(options.users)]  # users arrive one after another
        latencies, errors, lock = {}, [], threading.Lock()
        users = [threading.Thread(target=user_loop, args=(client, options.seconds, latencies, errors, lock))
                 for client in clients]
        started = time.perf_counter()
        for user in users:
            user.start()
        for user in users:
            user.join()
        elapsed = time.perf_counter() - started
        (pid,) = app_processes(tenant["id"])
        resident = int(next(line.split()[1] for line in open(f"/proc/{pid}/status") if line.startswith("VmRSS")))
    finally:
        close()
    every = [value for values in latencies.values() for value in values]
    report = {"users": options.users, "seconds": round(elapsed, 1), "tier": tenant["tier"], "requests": len(every),
              "requests_per_s": round(len(every) / elapsed, 1), "errors": len(errors),
              "p50_ms": round(statistics.median(every) * 1000, 1), "p95_ms": round(percentile(every, 0.95) * 1000, 1),
              "p99_ms": round(percentile(every, 0.99) * 1000, 1), "odoo_rss_mb": resident // 1024,
              "per_call_p50_ms": {name: round(statistics.median(v) * 1000, 1) for name, v in latencies.items()},
              "provisioned_s": round(provisioned, 2), "first_errors": errors[:3],
              "simultaneous_logins": options.users, "simultaneous_login_failures": burst_failures}
    print(f"{'figure':32} {'measured':>12}")
    for key in ("users", "seconds", "requests", "requests_per_s", "errors", "p50_ms", "p95_ms", "p99_ms", "odoo_rss_mb",
                "simultaneous_logins", "simultaneous_login_failures"):
        print(f"{key:32} {report[key]:>12}")
    for name, value in report["per_call_p50_ms"].items():
        print(f"{'  ' + name + ' p50_ms':32} {value:>12}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
