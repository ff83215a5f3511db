"""P2: request -> pod Ready on the Kubernetes testbed (kwok nodes), 10 tenants one after another.

Target p50 <= 3 s. The sample app on a registered PostgreSQL server; the figure covers the
platform's whole path (API, reconciler, server-side apply, scheduler, controllers, kwok).
Prints a table and one JSON line. Run: `.venv/bin/python bench/k8s.py` (or `make bench`).
"""
import json
import secrets
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from odoosaas.pg.clusters import Cluster, free_port  # noqa: E402
from odoosaas.reconcile.worker import Worker  # noqa: E402
from odoosaas.tenants import fleet  # noqa: E402
from tests import k8s_env  # noqa: E402
from tests.conftest import Caller, make_app, scratch_dir, stop_clusters  # noqa: E402
from bench.provision import percentile, step_seconds, wait_running  # noqa: E402


def main(count: int = 10):
    workdir = scratch_dir()
    kubeconfig, stop_cluster = k8s_env.start_cluster(workdir)
    admin = {"host": "127.0.0.1", "port": free_port(), "user": "odoosaas", "password": secrets.token_urlsafe(16)}
    database = Cluster(workdir / "pg" / "external")
    database.ensure(admin["port"], admin["user"], admin["password"])
    from lightkube import Client, KubeConfig
    k8s_env.traefik_crds(Client(KubeConfig.from_file(kubeconfig), field_manager="bench"))  # IngressRoute kind
    app = make_app(workdir / "data", driver="kubernetes", kubeconfig=str(kubeconfig), free_max_instances=100)
    platform = app.extensions["odoosaas"]
    fleet.register_server(platform, "external", f"host=127.0.0.1 port={admin['port']} user=odoosaas",
                          admin["password"])
    stop = threading.Event()
    threading.Thread(target=Worker(platform).run, args=(stop,), daemon=True).start()
    caller = Caller(app.test_client(), "p2@example.com")
    totals, steps = [], {}
    try:
        for i in range(count):
            started = time.perf_counter()
            tenant = wait_running(caller, caller.create(f"p2-{i}", app="sample").json["tenant"]["id"])
            totals.append(time.perf_counter() - started)
            assert tenant["status"] == "running", tenant["status_detail"]
            for name, seconds in step_seconds(tenant).items():
                steps.setdefault(name, []).append(seconds)
    finally:
        stop.set()
        stop_cluster()
        stop_clusters(workdir)
    report = {"p2_count": count, "p2_p50_s": round(statistics.median(totals), 3),
              "p2_p95_s": round(percentile(totals, 0.95), 3),
              "p2_steps_p50_s": {k: round(statistics.median(v), 3) for k, v in steps.items()}}
    print(f"{'figure':32} {'measured':>10} {'target':>10}")
    print(f"{'P2 p50 request->pod Ready':32} {report['p2_p50_s']:>9.3f}s {'<= 3.0s':>10}")
    print(f"{'P2 p95 request->pod Ready':32} {report['p2_p95_s']:>9.3f}s")
    for name, seconds in report["p2_steps_p50_s"].items():
        print(f"{'  step ' + name + ' (p50)':32} {seconds:>9.3f}s")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
