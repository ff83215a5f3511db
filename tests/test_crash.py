"""Kill the worker right after each step, start it again: it converges with nothing doubled
or left behind. The worker is a real `odoosaas worker` process; Traefik routes when built."""
import os
import signal
import subprocess
import sys
import time

import pytest

from odoosaas.drivers.local import find_traefik
from odoosaas.pg.clusters import free_port
from odoosaas.settings import Settings
from odoosaas.tenants.rules import PLANS
from tests.conftest import Caller, make_app
from tests.inspect import app_processes, database_state, tenant_row


def start_worker(workdir, traefik_port: int, fault: str = "", store: str = "", **settings) -> subprocess.Popen:
    env = {**os.environ, "ODOOSAAS_DATA_DIR": str(workdir), "ODOOSAAS_LOCAL_FALLBACK_APP": "sample",
           "ODOOSAAS_DATABASE_URL": store,
           "ODOOSAAS_TRAEFIK_PORT": str(traefik_port), "ODOOSAAS_FAULT_AFTER": fault,
           **{f"ODOOSAAS_{key.upper()}": str(value) for key, value in settings.items()}}
    log = open(workdir / "worker.log", "ab")
    return subprocess.Popen([sys.executable, "-m", "odoosaas.cli", "worker"], env=env, stdout=log,
                            stderr=subprocess.STDOUT)


def wait_for(app, tenant_id: str, status: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if tenant_row(app, tenant_id).status == status:
            return
        time.sleep(0.1)
    raise AssertionError(f"tenant never became {status}: {tenant_row(app, tenant_id).status_detail}")


def stop(worker: subprocess.Popen) -> None:
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=30)


@pytest.mark.parametrize("fault", [f"running:{step}" for step in PLANS["running"]] +
                         [f"deleted:{step}" for step in PLANS["deleted"]])
def test_crash_after_step_converges(workdir, store_url, fault):
    app = make_app(workdir, database_url=store_url)
    traefik_port = free_port() if find_traefik(Settings(traefik_port=1)) else 0
    caller = Caller(app.test_client(), "crash@example.com")
    tenant_id = caller.create("phoenix", tier="premium").json["tenant"]["id"]  # dedicated: a cluster of its own
    if fault.startswith("deleted:"):
        worker = start_worker(workdir, traefik_port, store=store_url)
        wait_for(app, tenant_id, "running")
        stop(worker)
        caller.delete(f"/api/v1/tenants/{tenant_id}")
    crashed = start_worker(workdir, traefik_port, fault, store=store_url)
    assert crashed.wait(timeout=90) == 70, (workdir / "worker.log").read_text()[-2000:]

    worker = start_worker(workdir, traefik_port, store=store_url)
    try:
        if fault.startswith("running:"):
            wait_for(app, tenant_id, "running")
            assert len(app_processes(tenant_id)) == 1
            assert database_state(app, tenant_id) == {"databases": 1, "roles": 1}
            routes = list((workdir / "traefik").glob("*.yaml")) if traefik_port else []
            assert len(routes) == (1 if traefik_port else 0)
            assert len([d for d in (workdir / "pg").iterdir()]) == 1
            caller.delete(f"/api/v1/tenants/{tenant_id}")
        wait_for(app, tenant_id, "deleted")
    finally:
        stop(worker)
    left = {pid: open(f"/proc/{pid}/stat").read()[:120] for pid in app_processes(tenant_id)}
    assert left == {}, (left, (workdir / "worker.log").read_text()[-3000:])
    assert database_state(app, tenant_id) == {"databases": 0, "roles": 0}
    if traefik_port:
        assert list((workdir / "traefik").glob("*.yaml")) == []
    assert not (workdir / "apps" / tenant_id).exists()
    assert list((workdir / "pg").iterdir()) == [], "the dedicated cluster's folder is gone"
    assert app_processes(f"traefik:{workdir}") == []
    app.extensions["odoosaas"].store.dispose()


def test_killed_at_random_moments_converges(workdir, store_url):
    """SIGKILL mid-step, not only between steps: three kills at varied moments, then a clean run."""
    app = make_app(workdir, database_url=store_url)
    caller = Caller(app.test_client(), "chaos@example.com")
    ids = [caller.create(name, **extra).json["tenant"]["id"]
           for name, extra in (("chaos-a", {}), ("chaos-b", {"tier": "premium"}), ("chaos-c", {}))]
    for delay in (0.4, 1.1, 2.3):
        worker = start_worker(workdir, 0, store=store_url)
        time.sleep(delay)
        worker.kill()
        worker.wait()
    worker = start_worker(workdir, 0, store=store_url)
    try:
        for tenant_id in ids:
            wait_for(app, tenant_id, "running")
            # a killed worker's apps die with it (pdeathsig) while the store still says running:
            # the new worker's start-up pass brings them back
            deadline = time.monotonic() + 60
            while len(app_processes(tenant_id)) != 1 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert len(app_processes(tenant_id)) == 1
            assert database_state(app, tenant_id) == {"databases": 1, "roles": 1}
        assert sorted(d.name for d in (workdir / "pg").iterdir())[-1] == "shared-1"
        assert len(list((workdir / "pg").iterdir())) == 2, "one shared server and one dedicated, no strays"
        for tenant_id in ids:
            caller.delete(f"/api/v1/tenants/{tenant_id}")
        for tenant_id in ids:
            wait_for(app, tenant_id, "deleted")
    finally:
        stop(worker)
    assert all(app_processes(tenant_id) == [] for tenant_id in ids)
    app.extensions["odoosaas"].store.dispose()
