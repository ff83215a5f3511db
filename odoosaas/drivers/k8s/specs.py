"""Desired Kubernetes objects for a tenant, as plain data: pure functions, no client.

Secrets go only into Secret objects; every other object refers to them by key.
"""
import hashlib
import ipaddress
import json

MANAGED = {"app.kubernetes.io/managed-by": "odoosaas"}
APP_LABEL = {"odoosaas.io/role": "tenant-app"}
JOB_LABEL = "odoosaas.io/job"
DB_LABEL = {"odoosaas.io/role": "database"}
PORT = 8069
FILESTORE = {"name": "filestore", "persistentVolumeClaim": {"claimName": "filestore"}}
SECRETS = {"name": "secrets", "secret": {"secretName": "tenant"}}  # the app's Secret, as files


def namespace_name(subdomain: str) -> str:
    return f"t-{subdomain}"


def resource(api: str, kind: str, name: str, ns: str | None = None, labels: dict | None = None, **fields) -> dict:
    """An object the platform manages (its label says so), with its kind's `fields` (`spec`, ...)."""
    meta = {"name": name, "labels": {**MANAGED, **(labels or {})}}
    return {"apiVersion": api, "kind": kind, "metadata": {**meta, "namespace": ns} if ns else meta, **fields}


def namespace(spec) -> dict:
    levels = {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "audit", "warn")}
    labels = {"odoosaas.io/tenant": spec.tenant_id, "odoosaas.io/tier": spec.tier, **levels}
    return resource("v1", "Namespace", namespace_name(spec.subdomain), labels=labels)


def access(ns: str, settings) -> dict:
    """Lets the control plane's ServiceAccount manage this namespace (deploy/base/rbac.yaml)."""
    return resource("rbac.authorization.k8s.io/v1", "RoleBinding", "odoosaas-tenant", ns, roleRef={
        "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "odoosaas-tenant"},
        subjects=[{"kind": "ServiceAccount", "name": "odoosaas", "namespace": settings.k8s_platform_namespace}])


def access_review(ns: str) -> dict:
    """Asks whether that RoleBinding is in force yet."""
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"namespace": ns, "verb": "patch", "resource": "resourcequotas"}}}


def quota(spec) -> list[dict]:
    """ResourceQuota and LimitRange from the tier: the app plus room for a dedicated database."""
    ns, r, one = namespace_name(spec.subdomain), spec.resources, limits(spec)
    cpu, memory = f"{2 * r.cpu_millicores}m", f"{2 * r.memory_mb}Mi"
    hard = {"requests.cpu": cpu, "limits.cpu": cpu, "requests.memory": memory, "limits.memory": memory,
            "requests.storage": f"{2 * r.storage_gb}Gi", "persistentvolumeclaims": "4", "pods": "6"}
    each = {"type": "Container", "default": one["limits"], "defaultRequest": one["requests"], "max": one["limits"]}
    return [resource("v1", "ResourceQuota", "tier", ns, spec={"hard": hard}),
            resource("v1", "LimitRange", "tier", ns, spec={"limits": [each]})]


def _policy(ns: str, name: str, selector: dict, types: list, **rules) -> dict:
    return resource("networking.k8s.io/v1", "NetworkPolicy", name, ns, spec={
        "podSelector": {"matchLabels": selector} if selector else {}, "policyTypes": types, **rules})


def _namespaced(name: str, pods: dict | None = None) -> dict:
    peer = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}}
    return {**peer, "podSelector": {"matchLabels": pods}} if pods else peer


def database_peer(host: str, ns: str) -> dict:
    """Where the tenant's PostgreSQL is: a pod here, a pod in another namespace, or an address."""
    if host.endswith(".svc.cluster.local"):
        server_ns = host.split(".")[1]
        return {"podSelector": {"matchLabels": DB_LABEL}} if server_ns == ns else _namespaced(server_ns, DB_LABEL)
    try:
        return {"ipBlock": {"cidr": f"{ipaddress.ip_address(host)}/32"}}
    except ValueError:  # an external server known by name: policies cannot select names
        return {"ipBlock": {"cidr": "0.0.0.0/0"}}


def network_policies(spec, settings, database_host: str) -> list[dict]:
    """Default deny both ways; in from the ingress controller (and the platform, for the
    database); out to DNS, the tenant's PostgreSQL, and the mail allow-list only."""
    ns = namespace_name(spec.subdomain)
    tcp = lambda port: {"protocol": "TCP", "port": port}  # noqa: E731
    dns = {"to": [_namespaced("kube-system", {"k8s-app": "kube-dns"})],
           "ports": [{"protocol": "UDP", "port": 53}, tcp(53)]}
    egress = [dns, {"to": [database_peer(database_host, ns)], "ports": [tcp(5432)]}]
    if settings.k8s_mail_egress:
        blocks = [{"ipBlock": {"cidr": cidr.strip()}} for cidr in settings.k8s_mail_egress.split(",")]
        egress.append({"to": blocks, "ports": [tcp(25), tcp(465), tcp(587)]})
    return [
        _policy(ns, "default-deny", {}, ["Ingress", "Egress"]),
        _policy(ns, "allow-ingress-controller", APP_LABEL, ["Ingress"], ingress=[
            {"from": [_namespaced(settings.k8s_ingress_namespace)], "ports": [tcp(PORT)]}]),
        _policy(ns, "allow-app-egress", APP_LABEL, ["Egress"], egress=egress),
        _policy(ns, "allow-database-ingress", DB_LABEL, ["Ingress"], ingress=[
            {"from": [{"podSelector": {"matchLabels": APP_LABEL}}, _namespaced(settings.k8s_platform_namespace)],
             "ports": [tcp(5432)]}]),
    ]


def secret(name: str, namespace: str, values: dict) -> dict:
    return resource("v1", "Secret", name, namespace, type="Opaque", stringData=values)


def claim(storage_gb: int, storage_class: str) -> dict:
    """A volume claim's spec, of the configured storage class (else the cluster's default)."""
    wanted = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": f"{storage_gb}Gi"}}}
    return {**wanted, "storageClassName": storage_class} if storage_class else wanted


def filestore(spec, storage_class: str) -> dict:
    return resource("v1", "PersistentVolumeClaim", "filestore", namespace_name(spec.subdomain),
                    spec=claim(spec.resources.storage_gb, storage_class))


def limits(spec) -> dict:
    r = spec.resources
    return {"limits": {"cpu": f"{r.cpu_millicores}m", "memory": f"{r.memory_mb}Mi"},
            "requests": {"cpu": f"{r.cpu_millicores // 4}m", "memory": f"{r.memory_mb // 2}Mi"}}


def pod(labels: dict, uid: int, container: dict, volumes: list, **more) -> dict:
    """A pod template that passes Pod Security `restricted`, run as `uid` (its volumes that group's); no
    ServiceAccount token: what runs in it never calls the Kubernetes API."""
    context = {"runAsNonRoot": True, "runAsUser": uid, "runAsGroup": uid, "fsGroup": uid,
               "seccompProfile": {"type": "RuntimeDefault"}}
    container = {**container, "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}
    return {"metadata": {"labels": labels}, "spec": {"securityContext": context, "automountServiceAccountToken": False,
                                                     "containers": [container], "volumes": volumes, **more}}


def deployment(spec, container: dict, uid: int) -> dict:
    """The app, spread over nodes: anti-affinity across every tenant namespace."""
    ns = namespace_name(spec.subdomain)
    probe = {"httpGet": {"path": "/web/health", "port": PORT}, "periodSeconds": 10}
    container = {**container, "ports": [{"containerPort": PORT, "name": "http"}], "resources": limits(spec),
                 "readinessProbe": probe, "livenessProbe": {**probe, "failureThreshold": 6},
                 "startupProbe": {**probe, "failureThreshold": 60}}
    spread = {"weight": 100, "podAffinityTerm": {"labelSelector": {"matchLabels": APP_LABEL},
                                                 "namespaceSelector": {}, "topologyKey": "kubernetes.io/hostname"}}
    template = pod({**APP_LABEL, "app": "odoo"}, uid, container, [FILESTORE, SECRETS],
                   affinity={"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [spread]}})
    return resource("apps/v1", "Deployment", "app", ns, APP_LABEL, spec={
        "replicas": 1, "selector": {"matchLabels": {"app": "odoo"}}, "strategy": {"type": "Recreate"},
        "template": template})


def job(name: str, ns: str, container: dict, uid: int) -> dict:
    """Runs once to completion before the app (e.g. Odoo installing `base`). A Job's pod template
    cannot change, so its name carries a hash of it: a new image or database host is a new Job."""
    template = pod(APP_LABEL, uid, container, [FILESTORE], restartPolicy="Never")
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
    return resource("batch/v1", "Job", f"{name}-{digest}", ns, {JOB_LABEL: name},
                    spec={"backoffLimit": 2, "template": template})


def service(spec) -> dict:
    return resource("v1", "Service", "app", namespace_name(spec.subdomain),
                    spec={"selector": {"app": "odoo"}, "ports": [{"name": "http", "port": PORT, "targetPort": PORT}]})


def routes(spec, settings) -> list[dict]:
    """Traefik IngressRoutes to the tenant's app: `app` for `<sub>.<base domain>`, with the wildcard certificate's
    Secret if there is one; `domains` for its custom domains, if any, their certificates from Traefik's ACME
    resolver (HTTP-01)."""
    wildcard = {"secretName": settings.k8s_tls_secret} if settings.k8s_tls_secret else {}
    wanted = [("app", [f"{spec.subdomain}.{settings.base_domain}"], wildcard),
              ("domains", spec.domains, {"certResolver": settings.k8s_cert_resolver})]
    app = [{"name": "app", "port": PORT}]
    return [resource("traefik.io/v1alpha1", "IngressRoute", name, namespace_name(spec.subdomain), spec={
        "entryPoints": settings.k8s_entry_points.split(","), "tls": tls,
        "routes": [{"match": f"Host(`{host}`)", "kind": "Rule", "services": app} for host in hosts]})
        for name, hosts, tls in wanted if hosts]


def postgres(name: str, namespace: str, settings, storage_gb: int) -> list[dict]:
    """A PostgreSQL server: headless Service + StatefulSet; its superuser password in a Secret."""
    labels = {**DB_LABEL, "odoosaas.io/db-server": name}
    env = [{"name": "POSTGRES_USER", "value": "odoosaas"}, {"name": "PGDATA", "value": "/data/pgdata"},
           {"name": "POSTGRES_PASSWORD", "valueFrom": {"secretKeyRef": {"name": name, "key": "password"}}}]
    mounts = [{"name": "data", "mountPath": "/data"}, {"name": "run", "mountPath": "/var/run/postgresql"}]
    container = {"name": "postgres", "image": settings.k8s_postgres_image, "env": env, "volumeMounts": mounts,
                 "readinessProbe": {"exec": {"command": ["pg_isready", "-U", "odoosaas"]}, "periodSeconds": 5},
                 "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "2", "memory": "2Gi"}}}
    data = {"metadata": {"name": "data"}, "spec": claim(storage_gb, settings.k8s_storage_class)}
    template = pod(labels, 999, container, [{"name": "run", "emptyDir": {}}])  # the image's postgres user
    return [resource("v1", "Service", name, namespace, labels, spec={
                "clusterIP": "None", "selector": labels, "ports": [{"name": "postgres", "port": 5432}]}),
            resource("apps/v1", "StatefulSet", name, namespace, labels, spec={
                "serviceName": name, "replicas": 1, "selector": {"matchLabels": labels}, "template": template,
                "volumeClaimTemplates": [data]})]
