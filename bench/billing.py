"""What billing with Kill Bill adds to provisioning (P1): the same 20 sample-app tenants, one after another,
on a free-tier platform and on a Kill Bill platform, interleaved (so load on the machine hits both alike):
request -> `running` p50 and p95 on each, and the `billing` step's own p50 and p95 (the subscription's
creation in Kill Bill). Kill Bill is the tests' own (testbed/killbill/fetch.sh, tests/killbill_env.py) on a
PostgreSQL cluster of this run; a warm-up tenant per platform (shared-1's initdb, the catalog upload) is
not counted.

Prints a table and one JSON line. Run: `.venv/bin/python bench/billing.py` (`make killbill` fetches Kill Bill).
"""
import json
import secrets
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.provision import percentile, step_seconds, wait_running  # noqa: E402
from odoosaas.pg.clusters import Cluster, free_port  # noqa: E402
from odoosaas.reconcile.worker import Worker  # noqa: E402
from tests import killbill_env  # noqa: E402
from tests.conftest import Caller, make_app, scratch_dir, stop_clusters  # noqa: E402

COUNT = 20


def start_killbill(folder: Path):
    """Kill Bill on its own PostgreSQL cluster; returns (process, url, seconds to healthy)."""
    admin = {"host": "127.0.0.1", "port": free_port(), "user": "odoosaas", "password": secrets.token_urlsafe(16)}
    Cluster(folder / "killbill-pg").ensure(admin["port"], admin["user"], admin["password"])
    artefacts, password, port = killbill_env.fetch_killbill(), secrets.token_urlsafe(16), free_port()
    killbill_env.prepare_database(admin, password, artefacts)
    properties = killbill_env.write_properties(folder, admin, password)
    url, started = f"http://127.0.0.1:{port}", time.monotonic()
    command = killbill_env.java_command(artefacts, folder, properties, port)
    return killbill_env.start_killbill(command, folder, url), url, time.monotonic() - started


class Platform:
    """An app with its worker thread and a signed-up customer who may have many instances."""

    def __init__(self, workdir: Path, name: str, **settings):
        self.workdir, self.app = workdir, make_app(workdir, free_max_instances=COUNT + 5, **settings)
        self.stop = threading.Event()
        threading.Thread(target=Worker(self.app.extensions["odoosaas"]).run, args=(self.stop,), daemon=True).start()
        self.caller = Caller(self.app.test_client(), f"bench-{name}@example.com")

    def provision(self, subdomain: str) -> tuple[float, dict]:
        started = time.perf_counter()
        tenant = wait_running(self.caller, self.caller.create(subdomain).json["tenant"]["id"])
        assert tenant["status"] == "running", tenant["status_detail"]
        return time.perf_counter() - started, tenant

    def close(self):
        self.stop.set()
        platform = self.app.extensions["odoosaas"]
        platform.driver.close()
        platform.store.dispose()
        stop_clusters(self.workdir)


def summary(values: list[float]) -> dict:
    return {"p50_s": round(statistics.median(values), 3), "p95_s": round(percentile(values, 0.95), 3)}


def main():
    folder = scratch_dir()
    process, url, start_seconds = start_killbill(folder)
    tenant = killbill_env.create_tenant(url, "bench")
    free = Platform(folder / "free", "free")
    killbill = Platform(folder / "killbill", "killbill", billing="killbill", killbill_url=url,
                        killbill_user=killbill_env.ADMIN_USER, killbill_password=killbill_env.ADMIN_PASSWORD,
                        killbill_api_key=tenant.api_key, killbill_api_secret=tenant.api_secret)
    totals, steps = {"free": [], "killbill": []}, {"free": {}, "killbill": {}}
    try:
        for platform in (free, killbill):
            platform.provision("warm-up")
        for i in range(COUNT):
            for name, platform in (("free", free), ("killbill", killbill)):
                seconds, tenant_shown = platform.provision(f"seq-{i}")
                totals[name].append(seconds)
                for step, step_s in step_seconds(tenant_shown).items():
                    steps[name].setdefault(step, []).append(step_s)
    finally:
        for platform in (free, killbill):
            platform.close()
        tenant.client.close()
        killbill_env.stop(process)
        Cluster(folder / "killbill-pg").destroy()
        shutil.rmtree(folder, ignore_errors=True)
    report = {"count": COUNT, "killbill_start_s": round(start_seconds, 1),
              **{f"p1_{name}": summary(values) for name, values in totals.items()},
              **{f"billing_step_{name}": summary(values["billing"]) for name, values in steps.items()},
              "steps_p50_s": {name: {step: round(statistics.median(v), 3) for step, v in values.items()}
                              for name, values in steps.items()}}
    report["p1_added_p50_s"] = round(report["p1_killbill"]["p50_s"] - report["p1_free"]["p50_s"], 3)
    print(f"{'figure (' + str(COUNT) + ' tenants each)':44} {'p50':>9} {'p95':>9}")
    for label, key in (("P1 request->running, free tier", "p1_free"), ("P1 request->running, Kill Bill", "p1_killbill"),
                       ("  billing step, free tier", "billing_step_free"),
                       ("  billing step, Kill Bill", "billing_step_killbill")):
        print(f"{label:44} {report[key]['p50_s']:>8.3f}s {report[key]['p95_s']:>8.3f}s")
    print(f"{'P1 added by Kill Bill (p50 difference)':44} {report['p1_added_p50_s']:>8.3f}s")
    for step, seconds in report["steps_p50_s"]["free"].items():
        print(f"{'  step ' + step + ' p50, free / Kill Bill':44} {seconds:>8.3f}s "
              f"{report['steps_p50_s']['killbill'].get(step, 0):>8.3f}s")
    print(f"{'Kill Bill start to healthy':44} {start_seconds:>8.1f}s")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
