"""The Kubernetes driver against a real API server, scheduler and controller manager with
kwok nodes (testbed/k8s), or any cluster named by ODOOSAAS_TEST_KUBECONFIG."""
import collections
import shutil
import time
from pathlib import Path

import pytest
import yaml
from lightkube import ApiError, Client, KubeConfig, codecs
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.core_v1 import Container, PodSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.admissionregistration_v1 import ValidatingAdmissionPolicy
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import ConfigMap, Namespace, Pod, Secret, Service, ServiceAccount

from odoosaas.drivers.k8s import specs
from odoosaas.drivers.k8s.driver import KubernetesDriver
from odoosaas.errors import TemporaryError
from odoosaas.reconcile.worker import Worker
from odoosaas.settings import Settings
from odoosaas.store.models import Domain, Tenant
from odoosaas.tenants import fleet, service
from tests import k8s_env
from tests.conftest import Caller, make_app, scratch_dir
from tests.test_k8s_specs import make_spec

ROOT = Path(__file__).resolve().parents[1]
IngressRoute = create_namespaced_resource("traefik.io", "v1alpha1", "IngressRoute", "ingressroutes")


@pytest.fixture(scope="module")
def cluster():
    workdir = scratch_dir()
    kubeconfig, stop = k8s_env.start_cluster(workdir)
    yield kubeconfig, workdir
    stop()


@pytest.fixture(scope="module")
def admin_client(cluster):
    return Client(KubeConfig.from_file(cluster[0]), field_manager="odoosaas-tests")


@pytest.fixture(scope="module")
def traefik_crds(admin_client):
    k8s_env.traefik_crds(admin_client)


@pytest.fixture(scope="module")
def traefik(cluster, traefik_crds):
    url, process = k8s_env.start_traefik(*cluster)
    yield url
    process.kill()


def k8s_app(workdir, kubeconfig, pg_admin, **overrides):
    app = make_app(workdir, driver="kubernetes", kubeconfig=str(kubeconfig), base_domain="example.test",
                   free_max_instances=20, **overrides)
    dsn = f"host={pg_admin['host']} port={pg_admin['port']} user={pg_admin['user']}"
    fleet.register_server(app.extensions["odoosaas"], f"ext-{workdir.name}", dsn, pg_admin["password"])
    return app


def converge(app, timeout=180):
    Worker(app.extensions["odoosaas"]).run_until_idle(timeout)


def namespace_gone(client, name, timeout=60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            client.get(Namespace, name)
        except ApiError as exc:
            if exc.status.code == 404:
                return True
        time.sleep(0.3)
    return False


def test_six_tenants_spread_route_and_go(cluster, admin_client, traefik, pg_admin, workdir):
    app = k8s_app(workdir, cluster[0], pg_admin)
    caller = Caller(app.test_client(), "k8s@example.com")
    operator = app.extensions["odoosaas"]
    ids = {f"spread-{i}": caller.create(f"spread-{i}", app="sample").json["tenant"]["id"] for i in range(6)}
    converge(app)
    tenants = [caller.get(f"/api/v1/tenants/{i}").json["tenant"] for i in ids.values()]
    assert [t["status"] for t in tenants] == ["running"] * 6, [t["status_detail"] for t in tenants]
    placement = collections.Counter(t["node"] for t in tenants)
    assert len(placement) == 3 and max(placement.values()) <= 2, placement
    with operator.store.session() as db:
        overview = fleet.overview(db, operator.driver)
    assert {n["name"]: n["tenants"] for n in overview["nodes"]} == dict(placement)
    assert all(t["url"] == f"http://{t['subdomain']}.example.test" for t in tenants)
    from tests.inspect import tenant_row
    usage = operator.driver.usage(tenant_row(app, tenants[0]["id"]))  # the testbed has no metrics-server
    assert usage == {"source": "limits", "memory_bytes": 1024 * 2**20, "cpu_millicores": 500}
    first = ids["spread-0"]  # a proven custom domain gets its own IngressRoute (the DNS proof: test_domains.py)
    assert caller.post(f"/api/v1/tenants/{first}/domains", json={"name": "spread-shop.example.org"}).status_code == 201
    with operator.store.session() as db:
        db.get(Domain, "spread-shop.example.org").status = "verified"
        service.rerun(db, db.get(Tenant, first), "routing a domain")
    converge(app)
    rules = set(wait_for_routers(traefik, 7).values())
    assert {f"Host(`{name}.example.test`)" for name in ids} | {"Host(`spread-shop.example.org`)"} == rules
    route = admin_client.get(IngressRoute, "domains", namespace="t-spread-0")
    assert route.spec["tls"] == {"certResolver": "letsencrypt"}
    for tenant_id in ids.values():
        caller.delete(f"/api/v1/tenants/{tenant_id}")
    converge(app)
    assert all(namespace_gone(admin_client, f"t-{name}", timeout=1) for name in ids)
    assert not any("spread-" in rule for rule in wait_for_routers(traefik, 0).values())


def wait_for_routers(traefik_url, count, timeout=20) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        found = {k: v for k, v in k8s_env.routers(traefik_url).items() if "spread-" in v}
        if len(found) == count or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def apply_until_done(driver, spec, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return driver.apply(None, spec)
        except TemporaryError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_official_odoo_passes_restricted_and_quota_holds(cluster, admin_client):
    from odoosaas.settings import Settings
    driver = KubernetesDriver(Settings(driver="kubernetes", kubeconfig=str(cluster[0])))
    spec = make_spec(host="10.0.0.5")
    apply_until_done(driver, spec)  # the init Job completes (kwok), then the Deployment is applied
    ns = specs.namespace_name(spec.subdomain)
    assert driver.client.get(Namespace, ns).metadata.labels["pod-security.kubernetes.io/enforce"] == "restricted"
    deadline = time.monotonic() + 30
    while not driver.observe(None, spec).ready and time.monotonic() < deadline:
        time.sleep(0.3)
    assert driver.observe(None, spec).ready, "the restricted Odoo pod was admitted and became Ready"
    privileged = codecs.from_dict({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bad", "namespace": ns},
                                   "spec": {"containers": [{"name": "x", "image": "busybox",
                                                            "securityContext": {"privileged": True}}]}})
    with pytest.raises(ApiError) as refused:
        admin_client.create(privileged)
    assert refused.value.status.code == 403 and "PodSecurity" in refused.value.status.message
    greedy = codecs.from_dict({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "greedy", "namespace": ns},
                               "spec": {"securityContext": {"runAsNonRoot": True, "runAsUser": 1000,
                                                            "seccompProfile": {"type": "RuntimeDefault"}},
                                        "containers": [{"name": "x", "image": "busybox", "securityContext": {
                                            "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                                            "resources": {"limits": {"cpu": "500m", "memory": "64Gi"}}}]}})
    with pytest.raises(ApiError) as over:
        admin_client.create(greedy)
    assert over.value.status.code == 403 and ("quota" in over.value.status.message
                                              or "maximum memory" in over.value.status.message)
    with pytest.raises(TemporaryError):
        driver.delete(type("T", (), {"subdomain": spec.subdomain})())
    assert namespace_gone(admin_client, ns)


def eventually(check, timeout=30, what="the condition"):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def test_new_odoo_image_gets_a_new_init_job_and_the_old_one_goes(cluster, admin_client):
    """A Job's pod template cannot change: a new image (or database host) must be a new Job,
    not an update the API server refuses with 422, which failed every Odoo tenant."""
    spec = make_spec(host="10.0.0.5")
    spec.subdomain = "upgrade"
    ns = specs.namespace_name(spec.subdomain)
    jobs = []
    for image in ("odoo:17.0", "odoo:18.0"):
        driver = KubernetesDriver(Settings(driver="kubernetes", kubeconfig=str(cluster[0]), k8s_odoo_image=image))
        apply_until_done(driver, spec)
        jobs.append({j.metadata.name: j.spec.template.spec.containers[0].image for j in admin_client.list(
            Job, namespace=ns)})
    (old, old_image), = jobs[0].items()
    (new, new_image), = jobs[1].items()
    assert (old_image, new_image) == ("odoo:17.0", "odoo:18.0") and old != new
    assert admin_client.get(Deployment, "app", namespace=ns).spec.template.spec.containers[0].image == "odoo:18.0"
    eventually(lambda: driver.observe(None, spec).ready, what="the app on the new image")
    eventually(lambda: not list(admin_client.list(Pod, namespace=ns, labels={"batch.kubernetes.io/job-name": old})),
               what="the old Job's pods to go")
    apply_until_done(driver, spec)  # the same spec again: the same Job, not run again
    assert [j.metadata.name for j in admin_client.list(Job, namespace=ns)] == [new]
    with pytest.raises(TemporaryError):
        driver.delete(type("T", (), {"subdomain": spec.subdomain})())


def service_account_kubeconfig(admin_client, cluster) -> Path:
    """Apply deploy/base/rbac.yaml and write a kubeconfig with its ServiceAccount's token."""
    admin_client.apply(Namespace(metadata=ObjectMeta(name="odoosaas")), force=True)
    for obj in codecs.load_all_yaml((ROOT / "deploy" / "base" / "rbac.yaml").read_text()):
        if obj.kind in ("ServiceAccount", "RoleBinding"):
            obj.metadata.namespace = "odoosaas"
        admin_client.apply(obj, force=True)
    from lightkube.models.authentication_v1 import TokenRequestSpec
    from lightkube.resources.core_v1 import ServiceAccount as SA
    request = SA.Token(metadata=ObjectMeta(name="odoosaas", namespace="odoosaas"),
                       spec=TokenRequestSpec(audiences=[], expirationSeconds=3600))
    token = admin_client.create(request, name="odoosaas", namespace="odoosaas").status.token
    config = yaml.safe_load(Path(cluster[0]).read_text())
    config["users"] = [{"name": "sa", "user": {"token": token}}]
    config["contexts"] = [{"name": "sa", "context": {"cluster": config["clusters"][0]["name"], "user": "sa"}}]
    config["current-context"] = "sa"
    path = cluster[1] / "service-account.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def admission_policy_in_force(admin_client, limited, timeout=30) -> None:
    """The policy is enforced a moment after it is made: wait until a dry run is refused."""
    probe = Namespace(metadata=ObjectMeta(name="t-probe"))  # no platform label
    deadline = time.monotonic() + timeout
    while True:
        try:
            limited.create(probe, dry_run=True)
        except ApiError as exc:
            assert exc.status.code == 403, exc.status.message
            break
        assert time.monotonic() < deadline, "the ValidatingAdmissionPolicy of deploy/base/rbac.yaml is not enforced"
        time.sleep(0.2)
    policy = admin_client.get(ValidatingAdmissionPolicy, "odoosaas-own-namespaces")
    assert not (policy.status.typeChecking and policy.status.typeChecking.expressionWarnings)


def test_rbac_is_enough_and_not_more(cluster, admin_client, traefik_crds, pg_admin, workdir):
    kubeconfig = service_account_kubeconfig(admin_client, cluster)
    admin_client.create(Namespace(metadata=ObjectMeta(name="t-rex")))  # someone else's, before the platform
    admin_client.create(ConfigMap(metadata=ObjectMeta(name="keep", namespace="t-rex"), data={"a": "b"}))
    app = k8s_app(workdir, kubeconfig, pg_admin)
    caller = Caller(app.test_client(), "rbac@example.com")
    ids = {name: caller.create(name, app="sample").json["tenant"]["id"] for name in ("least", "rex")}
    converge(app)
    least, rex = (caller.get(f"/api/v1/tenants/{ids[name]}").json["tenant"] for name in ("least", "rex"))
    assert least["status"] == "running", least["status_detail"]
    assert rex["status"] == "failed" and "namespace t-rex exists and was not made by this platform" in \
        rex["status_detail"], rex["status_detail"]
    for tenant_id in ids.values():
        caller.delete(f"/api/v1/tenants/{tenant_id}")
    converge(app)
    from tests.inspect import tenant_row
    assert [tenant_row(app, i).status for i in ids.values()] == ["deleted", "deleted"]
    assert namespace_gone(admin_client, "t-least", timeout=1)
    assert admin_client.get(ConfigMap, "keep", namespace="t-rex").data == {"a": "b"}  # left intact
    limited = Client(KubeConfig.from_file(kubeconfig), field_manager="odoosaas")
    admission_policy_in_force(admin_client, limited)
    with pytest.raises(ApiError) as denied:
        list(limited.list(Secret, namespace="kube-system"))
    assert denied.value.status.code == 403
    with pytest.raises(ApiError) as refused:  # binding itself the tenant role there
        limited.apply(codecs.from_dict(specs.access("kube-system", Settings())), force=True)
    assert refused.value.status.code == 403 and "kube-system" in refused.value.status.message
    with pytest.raises(ApiError) as denied:
        list(limited.list(Secret, namespace="kube-system"))
    assert denied.value.status.code == 403
    with pytest.raises(ApiError) as refused:  # a namespace it did not make: neither deleted...
        limited.delete(Namespace, "t-rex")
    assert refused.value.status.code == 403
    adopted = specs.namespace(make_spec())
    adopted["metadata"]["name"] = "t-rex"
    with pytest.raises(ApiError) as refused:  # ...nor adopted by labelling it
        limited.apply(codecs.from_dict(adopted), force=True)
    assert refused.value.status.code == 403
    assert admin_client.get(Namespace, "t-rex").metadata.labels.get("app.kubernetes.io/managed-by") is None
    loose = specs.namespace(make_spec())  # nor its own with privileged pods allowed
    loose["metadata"]["name"] = "t-loose"
    loose["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] = "privileged"
    with pytest.raises(ApiError) as refused:
        limited.apply(codecs.from_dict(loose), force=True, dry_run=True)
    assert refused.value.status.code == 403
    with pytest.raises(ApiError):
        list(limited.list(ServiceAccount, namespace="default"))
    assert list(limited.list(Secret, namespace="odoosaas")) is not None  # its own namespace


@pytest.mark.parametrize("fault", ["running:database", "running:runtime", "running:routing"])
def test_worker_killed_mid_provisioning_converges(cluster, admin_client, traefik, pg_admin, workdir, fault):
    from tests.test_crash import start_worker, stop, wait_for
    app = k8s_app(workdir, cluster[0], pg_admin)
    caller = Caller(app.test_client(), "phoenix@example.com")
    tenant_id = caller.create("k8s-phoenix", app="sample").json["tenant"]["id"]
    k8s = {"driver": "kubernetes", "kubeconfig": cluster[0], "base_domain": "example.test"}
    crashed = start_worker(workdir, 0, fault, **k8s)
    assert crashed.wait(timeout=120) == 70, (workdir / "worker.log").read_text()[-2000:]
    worker = start_worker(workdir, 0, **k8s)
    try:
        wait_for(app, tenant_id, "running", timeout=120)
        assert len(list(admin_client.list(Deployment, namespace="t-k8s-phoenix"))) == 1
        assert len(list(admin_client.list(Pod, namespace="t-k8s-phoenix", labels={"app": "odoo"}))) == 1
        caller.delete(f"/api/v1/tenants/{tenant_id}")
        wait_for(app, tenant_id, "deleted", timeout=120)
    finally:
        stop(worker)
    assert namespace_gone(admin_client, "t-k8s-phoenix", timeout=1)


def test_dedicated_postgres_is_accepted_and_becomes_ready(cluster, admin_client):
    from types import SimpleNamespace

    from lightkube.resources.apps_v1 import StatefulSet
    from lightkube.resources.core_v1 import PersistentVolumeClaim

    from odoosaas.settings import Settings
    driver = KubernetesDriver(Settings(driver="kubernetes", kubeconfig=str(cluster[0])))
    host, port = driver.server_address("ded-vault-1a2b3c", "dedicated", "vault")
    assert (host, port) == ("ded-vault-1a2b3c.t-vault.svc.cluster.local", 5432)
    server = SimpleNamespace(name="ded-vault-1a2b3c", kind="dedicated", host=host, port=port)
    spec = make_spec(tier="premium", host=host)
    spec.subdomain = "vault"
    deadline = time.monotonic() + 60
    while True:
        try:
            driver.ensure_db_server(server, {"user": "odoosaas", "password": "pg-superuser-secret"}, spec)
            break
        except TemporaryError:
            assert time.monotonic() < deadline, "the StatefulSet never became ready"
            time.sleep(0.5)
    assert admin_client.get(StatefulSet, server.name, namespace="t-vault").status.readyReplicas == 1
    claim = admin_client.get(PersistentVolumeClaim, f"data-{server.name}-0", namespace="t-vault")
    assert claim.spec.resources.requests["storage"] == "50Gi"
    assert admin_client.get(Namespace, "t-vault").metadata.labels["pod-security.kubernetes.io/enforce"] == "restricted"
    with pytest.raises(TemporaryError):
        driver.delete(SimpleNamespace(subdomain="vault"))
    assert namespace_gone(admin_client, "t-vault")



def test_a_release_moves_through_the_overlays_and_back(cluster, admin_client, traefik_crds, workdir):
    """deploy/'s overlays rendered by kustomize and applied as the README's Releases say: a new tag to staging,
    the same tag to production (over the same names here: one testbed), then production back to the previous
    tag. Each is admitted: the pods pass Pod Security `restricted` and become ready with the overlay's image,
    replicas, resources, settings and portal host."""
    tree = workdir / "deploy"
    shutil.copytree(ROOT / "deploy", tree)
    previous = set_tag(tree / "overlays" / "production", "0.2.0")
    set_tag(tree / "overlays" / "staging", "0.2.0")
    loose = Pod(metadata=ObjectMeta(name="loose", namespace="odoosaas"),
                spec=PodSpec(containers=[Container(name="c", image="busybox")]))
    try:
        for overlay, tag, replicas, host in (("staging", "0.2.0", 1, "portal.staging.example.com"),
                                             ("production", "0.2.0", 3, "portal.example.com"),
                                             ("production", previous, 3, "portal.example.com")):
            set_tag(tree / "overlays" / overlay, tag)
            rendered = release(admin_client, tree / "overlays" / overlay)
            assert_released(admin_client, rendered, f"localhost:32000/odoosaas:{tag}", replicas, host)
            with pytest.raises(ApiError) as refused:  # Pod Security is enforced there: a pod without it is not
                admin_client.create(loose, dry_run=True)
            assert refused.value.status.code == 403 and "restricted" in refused.value.status.message
    finally:
        for kind, name in ((Deployment, "api"), (Deployment, "worker"), (Service, "api"), (IngressRoute, "portal")):
            admin_client.delete(kind, name, namespace="odoosaas")


def set_tag(overlay: Path, tag: str) -> str:
    """What a release commits: the overlay's `newTag`. Returns the one it replaces."""
    config = yaml.safe_load((overlay / "kustomization.yaml").read_text())
    before, config["images"][0]["newTag"] = config["images"][0]["newTag"], tag
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(config))
    return before


def release(admin_client, overlay: Path) -> dict:
    """`kubectl apply -k <overlay>`, with the Secret the README has you create first."""
    objects = list(codecs.load_all_yaml(k8s_env.kustomize_build(overlay)))
    for obj in objects:
        admin_client.apply(obj, field_manager="odoosaas-release", force=True)
        if obj.kind == "Namespace":
            admin_client.apply(Secret(metadata=ObjectMeta(name="odoosaas-secrets", namespace="odoosaas"),
                                      stringData={"ODOOSAAS_SECRET_KEY": "k" * 48}),
                               field_manager="odoosaas-release", force=True)
    return {(obj.kind, obj.metadata.name): obj for obj in objects}


def assert_released(admin_client, rendered: dict, image: str, replicas: int, host: str) -> None:
    settings = next(obj for (kind, _), obj in rendered.items() if kind == "ConfigMap")
    assert settings.data["ODOOSAAS_K8S_PLATFORM_IMAGE"] == image  # tenants' sample apps run the same release
    assert settings.data["ODOOSAAS_PORTAL_URL"] == f"https://{host}"
    assert settings.data["ODOOSAAS_BASE_DOMAIN"] == host.removeprefix("portal.")
    route = admin_client.get(IngressRoute, "portal", namespace="odoosaas")
    assert route.spec["routes"][0]["match"] == f"Host(`{host}`)"
    for name, wanted in (("api", replicas), ("worker", 1)):
        eventually(lambda: rolled_out(admin_client, name, wanted, image), timeout=60,
                   what=f"{name}: {wanted} ready pods of {image}")
        limits = rendered["Deployment", name].spec.template.spec.containers[0].resources.limits
        pods = [p for p in admin_client.list(Pod, namespace="odoosaas", labels={"app.kubernetes.io/component": name})
                if p.metadata.deletionTimestamp is None]
        assert len(pods) == wanted
        assert {(p.spec.containers[0].image, p.spec.containers[0].resources.limits["memory"]) for p in pods} == \
            {(image, limits["memory"])}
        assert {e.configMapRef.name for p in pods for e in p.spec.containers[0].envFrom if e.configMapRef} == \
            {settings.metadata.name}  # a new release's settings reach the pods: the ConfigMap's name changes


def rolled_out(admin_client, name: str, replicas: int, image: str) -> bool:
    deployment = admin_client.get(Deployment, name, namespace="odoosaas")
    status = deployment.status
    return (deployment.spec.replicas == replicas and deployment.spec.template.spec.containers[0].image == image
            and status.observedGeneration == deployment.metadata.generation and status.updatedReplicas == replicas
            and status.readyReplicas == replicas and (status.replicas or 0) == replicas)
