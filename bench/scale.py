"""Figures at 1,000 tenants (issue 17, part 4), on the local driver with the sample app.

The platform runs as in production, two processes: `odoosaas serve` (ODOOSAAS_WORKER=false, waitress) and
`odoosaas worker`. The store holds 1,000 tenants: each of the 10 bench users made 3 through the API (1 left
running, 2 stopped), and 970 more, stopped and converged, of 194 other owners are inserted through the store.

P4: the 10 users, each with their own account (one login each), loop without pause for 60 s over list, get,
    subdomain checks, stop and start of their running tenant, and create (alternating with deleting what they
    created); target p95 <= 50 ms, 0 errors. The worker runs meanwhile and acts on those changes.
P6: the resident memory (psutil RSS, sampled every 0.5 s) of the API and the worker process; target <= 150 MB each.
Restart: the worker is stopped (SIGTERM, as a rollout does) and started again; the time until every live tenant
    has been re-ensured, seen from outside in the store: each re-ensured tenant gets an event written after the
    new worker started. Then the worker's and the API's CPU while idle, over 10 s.

The account routes' rate limit is raised for the bench (ODOOSAAS_RATE_LIMIT=10000 per minute): 10 signups come
from one address. Prints a table and one JSON line.
Run: `.venv/bin/python bench/scale.py [postgresql|sqlite]` (default postgresql, the production store).
"""
import json
import multiprocessing
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
import psutil  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from odoosaas.pg.clusters import Cluster, free_port  # noqa: E402
from odoosaas.secretbox import SecretBox  # noqa: E402
from odoosaas.store import Store  # noqa: E402
from odoosaas.store.models import Event, Tenant, User  # noqa: E402
from odoosaas.tenants.service import pending_steps  # noqa: E402
from tests.conftest import fresh_database, scratch_dir, stop_clusters  # noqa: E402

TENANTS, USERS, SECONDS = 1000, 10, 60
RESOURCES = {"cpu_millicores": 500, "memory_mb": 1024, "storage_gb": 5, "connection_limit": 20}
ROOT = Path(__file__).resolve().parents[1]  # the processes run the code of this tree


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Platform:
    """The two processes of the platform, on one data dir and one store."""

    def __init__(self, folder: Path, database_url: str):
        self.folder, self.port = folder, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "ODOOSAAS_DATA_DIR": str(folder / "data"), "ODOOSAAS_DATABASE_URL": database_url,
                    "ODOOSAAS_SECRET_KEY": secrets.token_urlsafe(48), "PORT": str(self.port),
                    "ODOOSAAS_RATE_LIMIT": "10000 per minute", "ODOOSAAS_LOCAL_FALLBACK_APP": "sample",
                    "ODOOSAAS_ODOO_BIN": str(folder / "no-odoo" / "odoo-bin"), "ODOOSAAS_TRAEFIK_PORT": "0",
                    "ODOOSAAS_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}
        self.api = self.worker = None

    def start(self, command: str, **env) -> subprocess.Popen:
        log = open(self.folder / f"{command}.log", "ab")
        return subprocess.Popen([sys.executable, "-m", "odoosaas.cli", command], env={**self.env, **env}, stdout=log,
                                stderr=subprocess.STDOUT)

    def start_api(self) -> None:
        self.api = self.start("serve", ODOOSAAS_WORKER="false")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz").status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("the API did not start: " + (self.folder / "serve.log").read_text()[-2000:])

    def start_worker(self) -> None:
        self.worker = self.start("worker")

    def stop(self, process: subprocess.Popen | None) -> None:
        if process and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class BenchUser:
    """One bench user: an account, one login, an httpx client."""

    def __init__(self, base_url: str, n: int):
        self.n, self.http = n, httpx.Client(base_url=base_url, timeout=30)
        credentials = {"email": f"user{n}@example.com", "password": "correct-horse"}
        assert self.http.post("/api/v1/auth/signup", json=credentials).status_code == 201
        token = self.http.post("/api/v1/auth/login", json=credentials).json()["access_token"]
        self.http.headers["Authorization"] = f"Bearer {token}"
        self.ids: list[str] = []
        self.created: str | None = None
        self.made = self.step = 0  # the plan goes on where the last phase left it (stop, then start)

    def create(self, subdomain: str) -> httpx.Response:
        body = {"subdomain": subdomain, "admin_email": "owner@example.com", "admin_password": "admin-pass-1",
                "app": "sample"}
        return self.http.post("/api/v1/tenants", json=body)


def store_counts(store: Store) -> dict:
    with store.session() as db:
        rows = db.execute(select(Tenant.status, func.count()).group_by(Tenant.status)).all()
    return dict(rows)


def lagging(store: Store) -> int:
    with store.session() as db:
        return db.scalar(select(func.count()).select_from(Tenant).where(
            Tenant.status != "deleted", Tenant.status != "failed", Tenant.observed_generation != Tenant.generation))


def wait_converged(store: Store, timeout: float = 300) -> float:
    started = time.monotonic()
    while lagging(store):
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"not converged after {timeout} s: {store_counts(store)}")
        time.sleep(0.2)
    return time.monotonic() - started


def seed_users(platform: Platform, store: Store) -> list[BenchUser]:
    """The 10 users sign up and log in at once (the API's memory peak: argon2), then make 3 tenants each
    through the API: one left running, two stopped."""
    with ThreadPoolExecutor(USERS) as pool:
        users = list(pool.map(lambda n: BenchUser(platform.url, n), range(USERS)))
    for user in users:
        for k in range(3):
            response = user.create(f"u{user.n}-t{k}")
            assert response.status_code == 202, response.text
            user.ids.append(response.json()["tenant"]["id"])
    wait_converged(store)
    for user in users:
        for tenant_id in user.ids[1:]:
            assert user.http.post(f"/api/v1/tenants/{tenant_id}/stop").status_code == 202
    wait_converged(store)
    return users


def seed_fleet(store: Store, box: SecretBox, count: int) -> None:
    """Converged stopped tenants of other owners, 5 each, inserted through the store (as worker_idle does)."""
    sealed = box.seal({"admin_password": "admin-pass-1", "db_password": secrets.token_urlsafe(24)})
    with store.session() as db:
        owners = [User(email=f"owner{i}@example.com") for i in range((count + 4) // 5)]
        db.add_all(owners)
        db.flush()
        db.add_all(Tenant(owner_id=owners[i // 5].id, subdomain=f"fleet-{i}", app="sample", tier="basic",
                          resources=RESOURCES, admin_email="a@example.com", secrets=sealed, db_strategy="shared",
                          db_strategy_reason="tier:basic", url=f"http://fleet-{i}.localhost", desired="stopped",
                          status="stopped", generation=2, observed_generation=2,
                          progress=[{**s, "state": "done"} for s in pending_steps(["runtime"])]) for i in range(count))


def user_loop(user: BenchUser, stop_at: float, timings: dict, errors: list, pause: float) -> None:
    """list, get, subdomain checks, stop/start of the running tenant, create or delete the extra one."""
    running = user.ids[0]
    plan = ["list", "get", "taken", "free", "get", "list", "create", "get", "list", "stop", "get", "free",
            "list", "get", "start", "taken", "get", "list", "free", "get"]
    while time.monotonic() < stop_at:
        action = plan[user.step % len(plan)]
        user.step += 1
        method, path, body = request_for(user, action, running, user.step)
        started = time.perf_counter()
        response = user.http.request(method, path, json=body)
        elapsed = (time.perf_counter() - started) * 1000
        timings.setdefault(action, []).append(elapsed)
        if response.status_code >= 400:
            errors.append((action, response.status_code, response.text[:200]))
        elif action == "create" and method == "POST":
            user.created = response.json()["tenant"]["id"]
        time.sleep(pause)


def request_for(user: BenchUser, action: str, running: str, step: int):
    if action == "list":
        return "GET", "/api/v1/tenants", None
    if action == "get":
        return "GET", f"/api/v1/tenants/{user.ids[step % len(user.ids)]}", None
    if action == "taken":
        return "GET", f"/api/v1/subdomains/fleet-{step % 970}", None
    if action == "free":
        return "GET", f"/api/v1/subdomains/free-{user.n}-{step}", None
    if action in ("stop", "start"):
        return "POST", f"/api/v1/tenants/{running}/{action}", None
    if user.created:  # "create": delete the one made last time instead, so the user stays within the free tier
        tenant_id, user.created = user.created, None
        return "DELETE", f"/api/v1/tenants/{tenant_id}", None
    user.made += 1
    return "POST", "/api/v1/tenants", {"subdomain": f"u{user.n}-x{user.made}", "admin_email": "owner@example.com",
                                       "admin_password": "admin-pass-1", "app": "sample"}


class Sampler(threading.Thread):
    """Peak resident memory of the platform's processes, every 0.5 s."""

    def __init__(self, platform: Platform):
        super().__init__(daemon=True)
        self.platform, self.peak, self.stopping = platform, {"api": 0, "worker": 0}, threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(0.5):
            for name, rss in self.now().items():
                self.peak[name] = max(self.peak[name], rss)

    def now(self) -> dict:
        found = {}
        for name in ("api", "worker"):
            try:
                found[name] = psutil.Process(getattr(self.platform, name).pid).memory_info().rss
            except (psutil.Error, AttributeError):
                continue
        return found

    def mark(self, phase: str, into: dict) -> None:
        into[phase] = {name: round(rss / 2**20, 1) for name, rss in self.now().items()}


def user_process(job: tuple) -> tuple[dict, list, tuple]:
    """One user's loop in a process of its own, as a person has a browser of their own: ten client threads in one
    interpreter would queue for its lock, and that wait would be timed as the API's."""
    base_url, authorization, n, ids, created, made, step, stop_at, pause = job
    user = BenchUser.__new__(BenchUser)
    user.n, user.ids, user.created, user.made, user.step = n, ids, created, made, step
    user.http = httpx.Client(base_url=base_url, timeout=30, headers={"Authorization": authorization})
    timings, errors = {}, []
    user_loop(user, stop_at, timings, errors, pause)
    return timings, errors, (user.created, user.made, user.step)


def p4(users: list[BenchUser], platform: Platform, pause: float = 0) -> dict:
    """`pause` 0: each user sends its next request as soon as the last is answered; 1: a person's pace (and
    the dashboard's, which polls a busy instance every second). Each user runs in a process of its own."""
    timings, errors = {}, []
    cpu = {name: psutil.Process(getattr(platform, name).pid) for name in ("api", "worker")}
    cpu_before = {name: sum(process.cpu_times()[:2]) for name, process in cpu.items()}
    stop_at = time.monotonic() + SECONDS  # CLOCK_MONOTONIC: one clock for every process on the machine
    jobs = [(platform.url, user.http.headers["Authorization"], user.n, user.ids, user.created, user.made, user.step,
             stop_at, pause) for user in users]
    with multiprocessing.get_context("fork").Pool(len(users)) as pool:
        outcomes = pool.map(user_process, jobs)
    for user, (mine, theirs, state) in zip(users, outcomes):
        user.created, user.made, user.step = state  # the next phase goes on where this one left off
        errors.extend(theirs)
        for action, values in mine.items():
            timings.setdefault(action, []).extend(values)
    every = [v for values in timings.values() for v in values]
    busy = {name: sum(process.cpu_times()[:2]) - cpu_before[name] for name, process in cpu.items()}
    return {"requests": len(every), "per_s": round(len(every) / SECONDS, 1),
            "api_cpu_ms_per_request": round(busy["api"] * 1000 / len(every), 2),
            "worker_cpu_percent": round(busy["worker"] * 100 / SECONDS, 1),
            "p50_ms": round(percentile(every, 0.5), 1), "p95_ms": round(percentile(every, 0.95), 1),
            "p99_ms": round(percentile(every, 0.99), 1), "errors": len(errors), "first_errors": errors[:3],
            "p95_by_action_ms": {a: round(percentile(v, 0.95), 1) for a, v in sorted(timings.items())}}


def live_tenants(store: Store, *desired: str) -> int:
    with store.session() as db:
        return db.scalar(select(func.count()).select_from(Tenant).where(
            Tenant.status.not_in(("deleted", "failed")), Tenant.desired.in_(desired or ("running", "stopped"))))


def re_ensured(store: Store, since: datetime, *desired: str) -> int:
    with store.session() as db:
        return db.scalar(select(func.count(func.distinct(Event.tenant_id))).join(Tenant).where(
            Event.at >= since, Tenant.desired.in_(desired or ("running", "stopped"))))


def restart(platform: Platform, store: Store) -> dict:
    """Stop the worker, start another, and wait until every live tenant has an event from the new one."""
    platform.stop(platform.worker)  # on the local driver, its apps stop with it
    live, running = live_tenants(store), live_tenants(store, "running")
    since = datetime.now(timezone.utc)
    started = time.monotonic()
    platform.start_worker()
    seen = {}
    while (done := re_ensured(store, since)) < live:
        elapsed = time.monotonic() - started
        if "running_s" not in seen and re_ensured(store, since, "running") >= running:
            seen["running_s"] = round(elapsed, 1)
        if "half_s" not in seen and done >= live / 2:
            seen["half_s"] = round(elapsed, 1)
        assert elapsed < 600, f"{done} of {live} re-ensured after 600 s"
        time.sleep(0.1)
    all_s = round(time.monotonic() - started, 1)
    with store.session() as db:
        back = db.scalars(select(func.min(Event.at)).join(Tenant).where(Event.at >= since, Tenant.desired == "running")
                          .group_by(Event.tenant_id))
        running_back = sorted(round((at - since).total_seconds(), 1) for at in back)
    return {"tenants": live, "running": running, "half_s": all_s, "running_s": all_s, **seen, "all_s": all_s,
            "running_back_s": running_back}


def idle_cpu(platform: Platform, seconds: float = 10) -> dict:
    time.sleep(2)  # the last passes' writes settle
    processes = {name: psutil.Process(getattr(platform, name).pid) for name in ("api", "worker")}
    for process in processes.values():
        process.cpu_percent(None)
    time.sleep(seconds)
    return {name: round(process.cpu_percent(None), 1) for name, process in processes.items()}


def open_store(folder: Path, kind: str):
    """(store URL, cleanup) for the metadata store of the bench."""
    if kind == "sqlite":
        return f"sqlite:///{folder / 'store.db'}", lambda: None
    admin = {"host": "127.0.0.1", "port": free_port(), "user": "odoosaas", "password": secrets.token_urlsafe(16)}
    cluster = Cluster(folder / "store-pg")
    cluster.ensure(admin["port"], admin["user"], admin["password"])
    return fresh_database(admin), cluster.destroy


def measure(platform: Platform, store: Store) -> dict:
    platform.start_api()
    platform.start_worker()
    sampler = Sampler(platform)
    sampler.start()
    started = time.monotonic()
    users = seed_users(platform, store)
    seed_fleet(store, SecretBox(platform.env["ODOOSAAS_SECRET_KEY"]), TENANTS - 3 * USERS)
    seeded, phases = round(time.monotonic() - started, 1), {}
    sampler.mark("seeded", phases)
    results = {"tenants": store_counts(store), "seed_s": seeded, "load_before": os.getloadavg()[0]}
    results["p4"] = p4(users, platform)
    results["load_after_p4"] = os.getloadavg()[0]
    results["p4_paced"] = p4(users, platform, pause=1)
    sampler.mark("p4", phases)
    results["p4"]["converged_after_s"] = round(wait_converged(store), 1)
    results["restart"] = restart(platform, store)
    sampler.mark("restart", phases)
    results["idle_cpu_percent"] = idle_cpu(platform)
    sampler.mark("idle", phases)
    sampler.stopping.set()
    results["rss_mb_after"] = phases
    results["p6_rss_mb"] = {name: round(peak / 2**20, 1) for name, peak in sampler.peak.items()}
    return results


def main() -> None:
    kind = sys.argv[1] if len(sys.argv) > 1 else "postgresql"
    folder = scratch_dir()
    url, destroy_store = open_store(folder, kind)
    platform = Platform(folder, url)
    store = Store(url)
    try:
        results = measure(platform, store)
    finally:
        platform.stop(platform.worker)
        platform.stop(platform.api)
        store.dispose()
        stop_clusters(folder / "data")
        destroy_store()
    shutil.rmtree(folder, ignore_errors=True)
    report(kind, results)


def report(kind: str, r: dict) -> None:
    p4, rss, cpu, rs = r["p4"], r["p6_rss_mb"], r["idle_cpu_percent"], r["restart"]
    print(f"store: {kind}; tenants by status: {r['tenants']} (seeded in {r['seed_s']} s); load average "
          f"{r['load_before']:.1f} before P4, {r['load_after_p4']:.1f} after (2 cores)")
    paced = r["p4_paced"]
    rows = [("P4 10 users, 60 s, no pause: requests/s", p4["per_s"], ""),
            ("P4 p50 ms", p4["p50_ms"], ""), ("P4 p95 ms", p4["p95_ms"], "<= 50"), ("P4 p99 ms", p4["p99_ms"], ""),
            ("P4 errors", p4["errors"], "0"), ("P4 API CPU ms per request", p4["api_cpu_ms_per_request"], ""),
            ("P4 worker CPU % meanwhile", p4["worker_cpu_percent"], ""),
            ("P4 paced (1 s between requests): requests/s", paced["per_s"], ""),
            ("P4 paced p50 ms", paced["p50_ms"], ""), ("P4 paced p95 ms", paced["p95_ms"], "<= 50"),
            ("P4 paced errors", paced["errors"], "0"), ("P6 API RSS MB (peak)", rss["api"], "<= 150"),
            ("P6 worker RSS MB (peak)", rss["worker"], "<= 150"),
            (f"restart: {rs['tenants']} tenants re-ensured, s", rs["all_s"], ""),
            ("restart: half of them, s", rs["half_s"], ""),
            (f"restart: the {rs['running']} running ones back, s", rs["running_s"], ""),
            ("idle CPU % worker (10 s)", cpu["worker"], ""), ("idle CPU % API (10 s)", cpu["api"], "")]
    print(f"{'figure':<44}{'value':>10}{'target':>10}")
    for name, value, target in rows:
        print(f"{name:<44}{value:>10}{target:>10}")
    print("P4 p95 by action (ms):", p4["p95_by_action_ms"])
    if p4["first_errors"]:
        print("first errors:", p4["first_errors"])
    print(json.dumps({"bench": "scale", "store": kind, **r}))


if __name__ == "__main__":
    main()
