"""The local runtime as a person runs it (`odoosaas serve`, a real process): it refuses a data dir that
PostgreSQL's account cannot reach, and stopping it leaves no process behind, while the next start
brings every tenant back."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from odoosaas.drivers.local import find_traefik
from odoosaas.drivers.supervisor import alive, marked
from odoosaas.pg.clusters import free_port
from odoosaas.settings import Settings
from tests.conftest import Caller, make_app, stop_clusters
from tests.inspect import tenant_row
from tests.test_crash import start_worker

ROOT = Path(__file__).resolve().parents[1]


def leftovers(folder: Path) -> dict[int, str]:
    """Live processes that name the folder in their command line or environment: apps, Traefik, postgres."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            if str(folder).encode() in cmdline + (entry / "environ").read_bytes() and alive(int(entry.name)):
                found[int(entry.name)] = cmdline.replace(b"\0", b" ").decode()[:160]
        except OSError:
            continue
    return found


def postmasters(folder: Path) -> dict[int, str]:
    return {pid: cmd for pid, cmd in leftovers(folder).items() if f"-D {folder}/pg/" in cmd}


class Clock:
    """Prints how far a test has come (pytest shows it when the test fails, or with -s)."""

    def __init__(self):
        self.started = time.monotonic()

    def __call__(self, what: str) -> None:
        print(f"{time.monotonic() - self.started:6.1f} s  {what}")


def settle(check, timeout: float, interval: float = 0.1):
    """Poll until check() is falsy (nothing left); return the last value."""
    deadline = time.monotonic() + timeout
    while (value := check()) and time.monotonic() < deadline:
        time.sleep(interval)
    return value


class Platform:
    """`odoosaas serve` on a data dir, as `make run` starts it, and a user of its API."""

    def __init__(self, data_dir: Path, traefik_port: int, **settings):
        self.data_dir, self.port, self.traefik_port, self.settings = data_dir, free_port(), traefik_port, settings
        self.url = f"http://127.0.0.1:{self.port}/api/v1"
        self.process: subprocess.Popen | None = None
        self.headers: dict = {}

    def start(self) -> "Platform":
        env = {**os.environ, "ODOOSAAS_DATA_DIR": str(self.data_dir), "ODOOSAAS_PORT": str(self.port),
               "ODOOSAAS_LOCAL_FALLBACK_APP": "sample", "ODOOSAAS_ODOO_BIN": str(self.data_dir / "no-odoo"),
               "ODOOSAAS_TRAEFIK_PORT": str(self.traefik_port),
               "ODOOSAAS_RATE_LIMIT": "1000 per minute",
               **{f"ODOOSAAS_{key.upper()}": str(value) for key, value in self.settings.items()}}
        with open(self.data_dir.parent / "serve.log", "ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "odoosaas.cli", "serve"], env=env, cwd=ROOT,
                                            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log()
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1)
                return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError(f"serve did not answer: {self.log()}")

    def log(self) -> str:
        return (self.data_dir.parent / "serve.log").read_text()[-3000:]

    def sign_up(self) -> None:
        body = {"email": "stopper@example.com", "password": "correct-horse"}
        assert httpx.post(f"{self.url}/auth/signup", json=body).status_code == 201
        token = httpx.post(f"{self.url}/auth/login", json=body).json()["access_token"]
        self.headers = {"Authorization": f"Bearer {token}"}

    def create(self, subdomain: str, **fields) -> str:
        body = {"subdomain": subdomain, "admin_email": "owner@example.com", "admin_password": "admin-pass-1", **fields}
        answer = httpx.post(f"{self.url}/tenants", json=body, headers=self.headers)
        assert answer.status_code == 202, answer.text
        return answer.json()["tenant"]["id"]

    def statuses(self) -> dict[str, str]:
        items = httpx.get(f"{self.url}/tenants", headers=self.headers).json()["items"]
        return {t["id"]: t["status"] for t in items}

    def answers(self, tenant_id: str) -> bool:
        """The tenant's own app process (one) answers its health check, which asks its database."""
        port = (self.data_dir / "apps" / tenant_id / "port").read_text()
        try:
            healthy = httpx.get(f"http://127.0.0.1:{port}/web/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False
        return healthy and len(marked(tenant_id)) == 1

    def wait_running(self, ids: list[str], timeout: float = 60) -> None:
        """Running in the store, and really (after a restart the store says so before the apps are back)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            statuses = self.statuses()
            if all(statuses.get(i) == "running" and self.answers(i) for i in ids):
                return
            time.sleep(0.2)
        raise AssertionError(f"not all running: {self.statuses()}\n{self.log()}")

    def signal(self, sig: int) -> float:
        """Send a signal; seconds until the process is gone."""
        started = time.monotonic()
        self.process.send_signal(sig)
        self.process.wait(timeout=30)
        return time.monotonic() - started


@pytest.fixture
def traefik_port():
    return free_port() if find_traefik(Settings(traefik_port=1)) else 0


@pytest.fixture
def platform(workdir, traefik_port):
    platform = Platform(workdir / "var", traefik_port)
    yield platform
    if platform.process and platform.process.poll() is None:
        platform.process.kill()
    stop_clusters(platform.data_dir)


def test_stopping_leaves_nothing_and_a_restart_brings_all_back(platform, traefik_port):
    data_dir, phase = platform.data_dir, Clock()
    platform.start()
    platform.sign_up()
    ids = [platform.create("stay-shared"), platform.create("stay-own", tier="premium")]
    platform.wait_running(ids)
    phase("two tenants running")
    assert len(postmasters(data_dir)) == 2, "a shared server and a dedicated one"

    took = platform.signal(signal.SIGTERM)
    left = settle(lambda: leftovers(data_dir), timeout=5)
    assert left == {}, (left, platform.log())
    assert took < 5, f"stopping took {took:.1f} s"
    phase(f"stopped by SIGTERM in {took:.1f} s")

    platform.start().wait_running(ids)
    phase("restarted: both running again")
    if traefik_port:  # the subdomain routes again through the new Traefik, once it listens (it starts beside the apps)
        def unrouted() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{traefik_port}/web/health",
                                 headers={"Host": "stay-own.localhost"}).status_code != 200
            except httpx.HTTPError:
                return True
        assert not settle(unrouted, timeout=15)

    # SIGKILL: the apps and Traefik end with the platform; the clusters outlive it and the next start re-uses them
    platform.signal(signal.SIGKILL)
    assert settle(lambda: {p: c for p, c in leftovers(data_dir).items() if "postgres" not in c}, timeout=3) == {}
    phase("killed: apps and Traefik gone")
    platform.start().wait_running(ids)
    phase("restarted: both running again")
    assert len(postmasters(data_dir)) == 2, "the clusters were re-used, not doubled"
    took = platform.signal(signal.SIGTERM)
    assert settle(lambda: leftovers(data_dir), timeout=5) == {}
    assert took < 5, f"stopping took {took:.1f} s"
    phase(f"stopped by SIGTERM in {took:.1f} s")


def test_a_web_process_that_stops_leaves_the_workers_databases(workdir):
    """Production runs `serve` without a worker beside `odoosaas worker`: the web process owns no cluster."""
    web = Platform(workdir / "var", 0, worker="false").start()
    web.sign_up()
    tenant_id = web.create("kept")
    worker = start_worker(web.data_dir, 0, local_fallback_app="sample", odoo_bin=workdir / "no-odoo")
    try:
        web.wait_running([tenant_id])
        assert web.signal(signal.SIGTERM) < 5
        time.sleep(0.5)
        assert web.answers(tenant_id) and len(postmasters(web.data_dir)) == 1
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=10) == 0
        left = settle(lambda: leftovers(web.data_dir), timeout=5)
        stop_clusters(web.data_dir)
    assert left == {}, "the worker, the last one out, stopped them"


@pytest.mark.skipif(os.geteuid() != 0, reason="PostgreSQL runs as another account only when we are root")
def test_a_data_dir_the_database_account_cannot_reach_is_refused(workdir):
    private = workdir / "private"
    private.mkdir(mode=0o700)  # like root's home folder
    data_dir = private / "var"
    env = {**os.environ, "ODOOSAAS_DATA_DIR": str(data_dir), "ODOOSAAS_PORT": str(free_port()),
           "ODOOSAAS_LOCAL_FALLBACK_APP": "sample", "ODOOSAAS_TRAEFIK_PORT": "0"}
    for command in ("serve", "worker"):
        done = subprocess.run([sys.executable, "-m", "odoosaas.cli", command], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 1, (done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and str(private) in lines[0] and "ODOOSAAS_DATA_DIR" in lines[0], done.stderr
        assert not (data_dir / "pg").exists() and leftovers(data_dir) == {}

    private.chmod(0o711)  # the fix it names: now the account passes through, and a tenant runs there
    app = make_app(data_dir)
    tenant_id = Caller(app.test_client(), "private@example.com").create("private").json["tenant"]["id"]
    with open(workdir / "worker.log", "ab") as log:
        worker = subprocess.Popen([sys.executable, "-m", "odoosaas.cli", "worker"], env=env, cwd=ROOT,
                                  stdout=log, stderr=subprocess.STDOUT)
    try:
        assert settle(lambda: tenant_row(app, tenant_id).status != "running", timeout=30) is False, \
            (workdir / "worker.log").read_text()[-2000:]
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=10) == 0
        stop_clusters(data_dir)
        app.extensions["odoosaas"].store.dispose()
    assert leftovers(data_dir) == {}
