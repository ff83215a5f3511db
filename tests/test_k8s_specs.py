"""The Kubernetes objects as data: pure functions, compared without any server."""
import json

from odoosaas import apps
from odoosaas.apps import Spec
from odoosaas.drivers.k8s import specs
from odoosaas.settings import Settings
from odoosaas.tenants.rules import Resources, resources

SETTINGS = Settings(driver="kubernetes", k8s_mail_egress="192.0.2.0/24")
SECRET = "db-pass-never-elsewhere"


def make_spec(tier="basic", host="shared-1.odoosaas.svc.cluster.local", app="odoo") -> Spec:
    db = {"host": host, "port": 5432, "dbname": "t_acme", "user": "t_acme", "password": SECRET}
    return Spec(tenant_id="t1", subdomain="acme", app=app, tier=tier, resources=Resources(**resources(tier)),
                database=db, admin_email="a@example.com", admin_password="admin-secret", url="https://acme.example.com")


def everything(spec, settings=SETTINGS) -> list[dict]:
    workload = apps.template(spec.app).k8s(spec, settings)
    return [specs.namespace(spec), *specs.quota(spec),
            *specs.network_policies(spec, settings, spec.database["host"]),
            specs.deployment(spec, workload.container, workload.uid), specs.service(spec),
            *specs.routes(spec, settings), specs.filestore(spec, "")]


def test_namespace_labels():
    ns = specs.namespace(make_spec(tier="standard"))
    labels = ns["metadata"]["labels"]
    assert ns["metadata"]["name"] == "t-acme"
    assert labels["app.kubernetes.io/managed-by"] == "odoosaas" and labels["odoosaas.io/tier"] == "standard"
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_quota_follows_the_tier():
    quota, limit_range = specs.quota(make_spec(tier="premium"))
    assert quota["spec"]["hard"]["limits.memory"] == "8192Mi" and quota["spec"]["hard"]["limits.cpu"] == "4000m"
    assert limit_range["spec"]["limits"][0]["default"] == {"cpu": "2000m", "memory": "4096Mi"}


def test_network_policies_deny_then_allow():
    policies = {p["metadata"]["name"]: p["spec"] for p in specs.network_policies(
        make_spec(), SETTINGS, "shared-1.odoosaas.svc.cluster.local")}
    assert policies["default-deny"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    source = policies["allow-ingress-controller"]["ingress"][0]["from"][0]
    assert source["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "ingress"}
    egress = policies["allow-app-egress"]["egress"]
    assert egress[0]["to"][0]["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}
    assert egress[1]["to"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "odoosaas"}
    assert egress[2]["to"] == [{"ipBlock": {"cidr": "192.0.2.0/24"}}]
    dedicated = specs.database_peer("ded-acme-1.t-acme.svc.cluster.local", "t-acme")
    assert dedicated == {"podSelector": {"matchLabels": specs.DB_LABEL}}
    assert specs.database_peer("10.1.2.3", "t-acme") == {"ipBlock": {"cidr": "10.1.2.3/32"}}


def test_official_odoo_is_restricted_and_keeps_secrets_in_the_secret():
    spec = make_spec()
    workload = apps.template("odoo").k8s(spec, SETTINGS)
    container = workload.container
    assert workload.secret == {"db-password": SECRET}
    pod = specs.deployment(spec, container, workload.uid)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == 101 and pod["securityContext"]["runAsNonRoot"]
    assert pod["containers"][0]["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert "--no-database-list" in container["args"] and "--db-filter=^t_acme$" in container["args"]
    assert "-i" in workload.init["args"] and "--stop-after-init" in workload.init["args"]
    objects = json.dumps(everything(spec))
    assert SECRET not in objects and "admin-secret" not in objects


def test_deployment_spreads_over_nodes_and_probes_health():
    spec = make_spec()
    workload = apps.template("odoo").k8s(spec, SETTINGS)
    pod = specs.deployment(spec, workload.container, workload.uid)["spec"]["template"]["spec"]
    term = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    assert term["namespaceSelector"] == {} and term["topologyKey"] == "kubernetes.io/hostname"
    assert pod["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/web/health"
    assert pod["containers"][0]["resources"]["limits"] == {"cpu": "500m", "memory": "1024Mi"}


def test_routes():
    (route,) = specs.routes(make_spec(), Settings(base_domain="example.com"))  # no custom domain: no second route
    assert route["apiVersion"] == "traefik.io/v1alpha1" and route["kind"] == "IngressRoute"
    assert route["spec"]["routes"][0]["match"] == "Host(`acme.example.com`)"
    (route,) = specs.routes(make_spec(), Settings(k8s_tls_secret="wildcard"))
    assert route["spec"]["tls"] == {"secretName": "wildcard"}
    spec = make_spec()
    spec.domains = {"erp.acme.com": False, "shop.acme.com": True}
    app, domains = specs.routes(spec, Settings(k8s_cert_resolver="le"))
    assert app["metadata"]["name"] == "app" and domains["metadata"]["name"] == "domains"
    assert [r["match"] for r in domains["spec"]["routes"]] == ["Host(`erp.acme.com`)", "Host(`shop.acme.com`)"]
    assert domains["spec"]["tls"] == {"certResolver": "le"} and domains["metadata"]["namespace"] == "t-acme"


def test_dedicated_postgres():
    service, statefulset = specs.postgres("ded-acme-1", "t-acme", SETTINGS, 50)
    assert service["spec"]["clusterIP"] == "None"
    assert statefulset["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "50Gi"
    env = {e["name"]: e for e in statefulset["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "value" not in env["POSTGRES_PASSWORD"]


def test_init_job_is_named_after_its_spec():
    """Its pod template cannot change in place: another image or database host is another Job."""
    def init_job(spec, image="odoo:18.0"):
        workload = apps.template("odoo").k8s(spec, Settings(driver="kubernetes", k8s_odoo_image=image))
        return specs.job("init", "t-acme", workload.init, workload.uid)["metadata"]
    first = init_job(make_spec())
    assert first == init_job(make_spec()) and first["name"].startswith("init-") and len(first["name"]) == 15
    assert first["labels"][specs.JOB_LABEL] == "init"
    assert init_job(make_spec(), "odoo:19.0")["name"] != first["name"]
    assert init_job(make_spec(host="10.0.0.9"))["name"] != first["name"]
