"""Two workers (real `odoosaas worker` processes) and two API replicas on one PostgreSQL store, with
crashes: no tenant or operation is ever driven by two workers at once, none is dropped, and a tenant's
app never runs twice. The workers share one data dir, as two local workers on one machine must.

What is observed: each worker logs the start and end of every pass with its id (DEBUG), so the
passes of every row form intervals that must not overlap across workers; a sampler counts each
tenant's live app processes (by their environment mark) every few milliseconds; mails are counted.
The lease is 2 s, shorter than a dedicated server's creation, so only the heartbeat keeps such a pass
its row (the test checks that such passes happened)."""
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

import httpx

from odoosaas.drivers.local import find_traefik
from odoosaas.drivers.supervisor import MARK, alive
from odoosaas.pg.clusters import free_port
from odoosaas.settings import Settings
from tests.conftest import Caller, fresh_database, make_app
from tests.inspect import tenant_row
from tests.test_local_runtime import leftovers, postmasters, settle

LEASE = 2
PASS = re.compile(r"^(\S+ \S+) DEBUG odoosaas\.reconcile\.worker: (\w+) (\S+): pass (started|ended) by (\S+)$")


class Run:
    """One `odoosaas worker` process; when it ended is noted the moment it does."""

    def __init__(self, workdir: Path, store: str, traefik_port: int, name: str, fault: str = ""):
        self.name, self.log = name, workdir / f"worker-{name}.log"
        env = {**os.environ, "ODOOSAAS_DATA_DIR": str(workdir), "ODOOSAAS_DATABASE_URL": store,
               "ODOOSAAS_LOCAL_FALLBACK_APP": "sample", "ODOOSAAS_TRAEFIK_PORT": str(traefik_port),
               "ODOOSAAS_FAULT_AFTER": fault, "ODOOSAAS_LEASE_SECONDS": str(LEASE), "ODOOSAAS_LOG_LEVEL": "DEBUG"}
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "odoosaas.cli", "worker"], env=env,
                                            stdout=log, stderr=subprocess.STDOUT)
        self.started_at, self.ended_at = time.time(), None
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        self.process.wait()
        self.ended_at = time.time()

    def passes(self) -> list[tuple[str, str, float, float]]:
        """(row, worker id, start, end) of every pass; one cut short by a crash ends when the process did."""
        opened, done = {}, []
        for line in self.log.read_text().splitlines():
            if match := PASS.match(line):
                stamp, kind, row, what, owner = match.groups()
                at = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
                if what == "started":
                    opened[row] = (owner, at)
                else:
                    done.append((row, owner, opened.pop(row)[1], at))
        assert not opened or self.ended_at, f"{self.name} still runs passes: {opened}"
        return done + [(row, owner, at, self.ended_at) for row, (owner, at) in opened.items()]


class Crew:
    """Two worker slots; one that exits is started again (as systemd or Kubernetes would), without fault."""

    def __init__(self, workdir: Path, store: str, traefik_port: int, faults: list[str]):
        self.workdir, self.store, self.traefik_port = workdir, store, traefik_port
        self.slots = [Run(workdir, store, traefik_port, f"{slot}0", fault) for slot, fault in zip("ab", faults)]
        self.runs = list(self.slots)

    def keep_alive(self) -> None:
        for index, run in enumerate(self.slots):
            if run.ended_at is not None:
                self.slots[index] = Run(self.workdir, self.store, self.traefik_port, f"{run.name[0]}{len(self.runs)}")
                self.runs.append(self.slots[index])

    def until(self, done, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.keep_alive()
            if done():
                return
            time.sleep(0.1)
        raise AssertionError(f"never {what}: " + "\n".join(r.log.read_text()[-1500:] for r in self.slots))

    def exits(self) -> list:
        return [run.process.returncode for run in self.runs if run.ended_at is not None]


class Sampler:
    """The most live app processes any tenant had at one moment, sampled all along."""

    def __init__(self):
        self.most: Counter = Counter()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            now = Counter()
            for entry in Path("/proc").iterdir():
                try:
                    if entry.name.isdigit():
                        for item in (entry / "environ").read_bytes().split(b"\0"):
                            if item.startswith(f"{MARK}=".encode()) and alive(int(entry.name)):
                                now[item.decode().partition("=")[2]] += 1
                except OSError:
                    continue
            for name, count in now.items():
                self.most[name] = max(self.most[name], count)
            time.sleep(0.01)


def answers(workdir: Path, tenant_id: str) -> bool:
    port = (workdir / "apps" / tenant_id / "port").read_text()
    try:
        return httpx.get(f"http://127.0.0.1:{port}/web/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def converged(app, workdir: Path, wanted: dict[str, str]) -> bool:
    """Every tenant is what it should be, in the store and really (one app answering, or none)."""
    for tenant_id, status in wanted.items():
        row = tenant_row(app, tenant_id)
        processes = Counter(item for pid in Path("/proc").iterdir() if pid.name.isdigit()
                            for item in [_mark(pid)] if item)[tenant_id]
        if row.status != status or processes != (status == "running"):
            return False
        if status == "running" and not answers(workdir, tenant_id):
            return False
    return True


def _mark(proc: Path) -> str:
    try:
        for item in (proc / "environ").read_bytes().split(b"\0"):
            if item.startswith(f"{MARK}=".encode()) and alive(int(proc.name)):
                return item.decode().partition("=")[2]
    except OSError:
        pass
    return ""


def overlaps(runs: list[Run]) -> list:
    by_row = defaultdict(list)
    for run in runs:
        for row, owner, start, end in run.passes():
            by_row[row].append((start, end, owner))
    return [(row, a, b) for row, spans in by_row.items() for a in spans for b in spans
            if a[2] < b[2] and a[0] < b[1] and b[0] < a[1]]


def test_two_workers_and_two_replicas_on_one_store(pg_admin, workdir):
    store = fresh_database(pg_admin)
    traefik_port = free_port() if find_traefik(Settings(traefik_port=1)) else 0
    replicas = [make_app(workdir, database_url=store) for _ in range(2)]
    one, two = Caller(replicas[0].test_client(), "one@example.com"), Caller(replicas[1].test_client(), "two@example.com")
    sampler = Sampler()
    crew = Crew(workdir, store, traefik_port, ["running:database", "running:ready"])
    try:
        # replica 0 takes one's requests, replica 1 two's; both users mail a reset, a stranger too (no mail)
        ids = {name: caller.create(name, **extra).json["tenant"]["id"] for name, caller, extra in (
            ("wa-1", one, {}), ("wb-1", two, {}), ("wa-2", one, {"tier": "premium"}), ("wb-2", two, {}),
            ("wb-3", two, {"tier": "premium"}))}
        for caller in (one, two):
            assert caller.post("/api/v1/auth/password-reset", json={"email": caller.email}).status_code == 202
        assert one.post("/api/v1/auth/password-reset", json={"email": "nobody@example.com"}).status_code == 202
        wanted = dict.fromkeys(ids.values(), "running")
        crew.until(lambda: converged(replicas[0], workdir, wanted), 45, "all running")
        assert 70 in crew.exits(), f"no fault fired: {crew.exits()}"

        # the other replica changes each user's tenants; one worker is killed in the middle of it
        headers = {"one": one.headers, "two": two.headers}
        other = {"wa-1": (replicas[1], "one"), "wb-1": (replicas[0], "two"), "wb-3": (replicas[0], "two")}
        for name, path in (("wa-1", "stop"), ("wb-3", "stop")):
            client, user = other[name]
            assert client.test_client().post(f"/api/v1/tenants/{ids[name]}/{path}", headers=headers[user]).status_code == 202
        assert replicas[1].test_client().delete(f"/api/v1/tenants/{ids['wb-2']}", headers=two.headers).status_code == 202
        time.sleep(0.3)
        crew.slots[1].process.kill()
        wanted.update({ids["wa-1"]: "stopped", ids["wb-3"]: "stopped", ids["wb-2"]: "deleted"})
        crew.until(lambda: converged(replicas[1], workdir, wanted), 30, "stopped and deleted")
        assert one.post(f"/api/v1/tenants/{ids['wa-1']}/start").status_code == 202
        wanted[ids["wa-1"]] = "running"
        crew.until(lambda: converged(replicas[0], workdir, wanted), 30, "started again")

        # a worker that stops while the other runs leaves the clusters that the other's apps use
        # both past their start-up pass first (a late fault restarts one, whose pass takes apps over)
        time.sleep(max(0.0, max(run.started_at for run in crew.slots) + 3 - time.time()))
        crew.until(lambda: converged(replicas[0], workdir, wanted), 30, "settled after start-up")
        apps_of = Counter(_parent(i) for i in ids.values() if wanted[i] == "running")
        survivor = max(crew.slots, key=lambda run: apps_of[run.process.pid])
        leaving = next(run for run in crew.slots if run is not survivor)
        leaving.process.send_signal(signal.SIGTERM)
        assert leaving.process.wait(timeout=10) == 0, (crew.exits(), leaving.log.read_text()[-2000:])
        kept = [i for i in ids.values() if wanted[i] == "running" and _parent(i) == survivor.process.pid]
        assert kept and all(answers(workdir, i) for i in kept), "the survivor's apps still reach their databases"
        assert len(postmasters(workdir)) == 3
    finally:
        for run in crew.slots:
            run.process.send_signal(signal.SIGTERM)
        for run in crew.slots:
            run.process.wait(timeout=15)
        sampler.stop.set()
    assert settle(lambda: leftovers(workdir), timeout=5) == {}, "the last worker out stopped everything"

    ours = {name: most for name, most in sampler.most.items() if name in {*ids.values(), f"traefik:{workdir}"}}
    assert len(ours) == len(ids) + bool(traefik_port) and max(ours.values()) == 1, f"an app ran twice: {ours}"
    assert overlaps(crew.runs) == [], "a row was driven by two workers at once"
    passes = [p for run in crew.runs for p in run.passes()]
    assert len({owner for _, owner, _, _ in passes}) >= 4, "four workers (two restarted) drove passes"
    assert any(end - start > LEASE for _, _, start, end in passes), "no pass outlived a lease: heartbeat untested"
    assert -signal.SIGKILL in crew.exits()
    mails = list((workdir / "outbox").glob("*.eml"))
    assert len(mails) == 2, [m.read_text()[:200] for m in mails]
    for app in replicas:
        app.extensions["odoosaas"].store.dispose()


def _parent(tenant_id: str) -> int | None:
    """The worker process supervising a tenant's app (its parent)."""
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and _mark(proc) == tenant_id:
            return int((proc / "stat").read_text().rpartition(")")[2].split()[1])
    return None
