#!/usr/bin/env python3
"""End-to-end check of the test bed with the official Python client.

    python verify.py WORKDIR            # start a Testbed in WORKDIR, check, stop
    python verify.py --kubeconfig FILE  # check an already running one (testbed.py up)

Needs the `kubernetes` package (pip install kubernetes). Checks:
  * /version is v1.36.x; 3 kwok nodes Ready with the expected labels/capacity
  * Deployment(1) -> ReplicaSet -> Pod, scheduled on a kwok node, Running+Ready,
    availableReplicas=1 (controller-manager + scheduler + kwok)
  * Job -> Pod Succeeded -> Job Complete
  * namespace deletion really removes the namespace (namespace controller)
  * PodSecurity: a non-compliant Pod in an enforce=restricted namespace -> 403
  * ResourceQuota pods=1: the second Pod -> 403 exceeded quota
"""
from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path

from kubernetes import client, config
from kubernetes.client.rest import ApiException

sys.path.insert(0, str(Path(__file__).resolve().parent))


def wait(what, fn, timeout=60.0, interval=0.25):
    t0 = time.monotonic()
    while True:
        v = fn()
        if v:
            print(f"  ok  {what} ({time.monotonic() - t0:.1f}s)")
            return v
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timeout: {what}")
        time.sleep(interval)


def pod_spec(name, **extra):
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="odoo:17", **extra)]),
    )


def run_checks(kubeconfig: str) -> None:
    config.load_kube_config(config_file=kubeconfig)
    core, apps, batch = client.CoreV1Api(), client.AppsV1Api(), client.BatchV1Api()
    ver = client.VersionApi().get_code()
    print(f"server version {ver.git_version}")
    assert ver.git_version.startswith("v1.36."), ver.git_version

    nodes = core.list_node(label_selector="type=kwok").items
    for n in nodes:
        ready = {c.type: c.status for c in n.status.conditions}.get("Ready")
        print(f"  node {n.metadata.name} ready={ready} alloc={n.status.allocatable} "
              f"annot={n.metadata.annotations.get('kwok.x-k8s.io/node')}")
    assert sorted(n.metadata.name for n in nodes) == ["node-1", "node-2", "node-3"]
    assert all({c.type: c.status for c in n.status.conditions}["Ready"] == "True" for n in nodes)
    assert all(n.status.allocatable == {"cpu": "32", "memory": "64Gi", "pods": "110"} for n in nodes)

    sfx = uuid.uuid4().hex[:6]

    # --- Deployment -> RS -> Pod, scheduled, Running/Ready
    ns = f"e2e-{sfx}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    wait(f"default ServiceAccount in {ns}",
         lambda: any(s.metadata.name == "default" for s in core.list_namespaced_service_account(ns).items))
    labels = {"app": "web"}
    apps.create_namespaced_deployment(ns, client.V1Deployment(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1DeploymentSpec(
            replicas=1,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[client.V1Container(
                    name="odoo", image="odoo:17",
                    resources=client.V1ResourceRequirements(requests={"cpu": "500m", "memory": "1Gi"}))]),
            ),
        ),
    ))
    rs = wait("ReplicaSet created by deployment controller",
              lambda: apps.list_namespaced_replica_set(ns).items)
    print(f"      rs {rs[0].metadata.name} owner={rs[0].metadata.owner_references[0].kind}")

    def running_pod():
        pods = core.list_namespaced_pod(ns, label_selector="app=web").items
        for p in pods:
            conds = {c.type: c.status for c in (p.status.conditions or [])}
            if p.status.phase == "Running" and conds.get("Ready") == "True":
                return p
        return None

    p = wait("Pod scheduled + Running + Ready", running_pod)
    print(f"      pod {p.metadata.name} node={p.spec.node_name} phase={p.status.phase} "
          f"podIP={p.status.pod_ip} hostIP={p.status.host_ip} sa-token-vol="
          f"{any(v.projected for v in p.spec.volumes or [])}")
    assert p.spec.node_name in ("node-1", "node-2", "node-3")
    d = wait("Deployment availableReplicas=1",
             lambda: (lambda d: d if d.status.available_replicas == 1 else None)(
                 apps.read_namespaced_deployment("web", ns)))
    print(f"      deployment status: replicas={d.status.replicas} ready={d.status.ready_replicas} "
          f"available={d.status.available_replicas}")
    ev = core.list_namespaced_event(ns).items
    print("      events: " + "; ".join(sorted({f"{e.source.component or e.reporting_component}:{e.reason}" for e in ev})))

    # --- Job completes
    batch.create_namespaced_job(ns, client.V1Job(
        metadata=client.V1ObjectMeta(name="init-db"),
        spec=client.V1JobSpec(backoff_limit=0, template=client.V1PodTemplateSpec(
            spec=client.V1PodSpec(restart_policy="Never", containers=[
                client.V1Container(name="init", image="odoo:17", command=["odoo", "-i", "base"])]))),
    ))
    j = wait("Job succeeded=1 (kwok pod-complete stage)",
             lambda: (lambda j: j if (j.status.succeeded or 0) == 1 else None)(
                 batch.read_namespaced_job("init-db", ns)), timeout=60)
    print(f"      job conditions: {[c.type for c in j.status.conditions or []]}")

    # --- namespace deletion finalizes
    core.delete_namespace(ns)

    def ns_gone():
        try:
            core.read_namespace(ns)
            return False
        except ApiException as e:
            return e.status == 404

    wait(f"namespace {ns} deleted (namespace controller finalized it)", ns_gone, timeout=90)

    # --- PodSecurity restricted
    ns2 = f"psa-{sfx}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(
        name=ns2, labels={"pod-security.kubernetes.io/enforce": "restricted"})))
    wait(f"default ServiceAccount in {ns2}",
         lambda: any(s.metadata.name == "default" for s in core.list_namespaced_service_account(ns2).items))
    try:
        core.create_namespaced_pod(ns2, pod_spec("bad"))
        raise AssertionError("PodSecurity did not refuse a non-restricted pod")
    except ApiException as e:
        print(f"  ok  PodSecurity refused: HTTP {e.status}: {e.body[:300]}")
        assert e.status == 403 and "violates PodSecurity" in e.body, e.body
    good = client.V1Pod(
        metadata=client.V1ObjectMeta(name="good"),
        spec=client.V1PodSpec(
            security_context=client.V1PodSecurityContext(
                run_as_non_root=True, run_as_user=1000,
                seccomp_profile=client.V1SeccompProfile(type="RuntimeDefault")),
            containers=[client.V1Container(
                name="c", image="odoo:17",
                security_context=client.V1SecurityContext(
                    allow_privilege_escalation=False,
                    capabilities=client.V1Capabilities(drop=["ALL"])))]))
    core.create_namespaced_pod(ns2, good)
    print("  ok  restricted-compliant pod admitted")
    core.delete_namespace(ns2)

    # --- ResourceQuota
    ns3 = f"quota-{sfx}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns3)))
    wait(f"default ServiceAccount in {ns3}",
         lambda: any(s.metadata.name == "default" for s in core.list_namespaced_service_account(ns3).items))
    core.create_namespaced_resource_quota(ns3, client.V1ResourceQuota(
        metadata=client.V1ObjectMeta(name="q"), spec=client.V1ResourceQuotaSpec(hard={"pods": "1"})))
    wait("ResourceQuota status.hard computed by resourcequota controller",
         lambda: core.read_namespaced_resource_quota("q", ns3).status.hard)
    core.create_namespaced_pod(ns3, pod_spec("p1"))
    print("  ok  first pod admitted under quota pods=1")
    try:
        core.create_namespaced_pod(ns3, pod_spec("p2"))
        raise AssertionError("ResourceQuota did not refuse the second pod")
    except ApiException as e:
        print(f"  ok  ResourceQuota refused: HTTP {e.status}: {e.body[:300]}")
        assert e.status == 403 and "exceeded quota" in e.body, e.body
    core.delete_namespace(ns3)
    print("ALL CHECKS PASSED")


def main(argv):
    if len(argv) == 2 and argv[0] == "--kubeconfig":
        run_checks(argv[1])
        return 0
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    from testbed import Testbed
    with Testbed(Path(argv[0])) as tb:
        print(f"testbed started in {tb.start_seconds:.1f}s: {tb.server}")
        run_checks(str(tb.kubeconfig))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
