"""The Kubernetes driver: a namespace per tenant, applied with server-side apply.

Objects come from the pure functions in `specs`; this thin layer sends them and reads
status back. Client errors are converted where they enter: a conflict or an unreachable
API server is a TemporaryError, a refused object a PermanentError with the server's reason.
"""
import httpx2 as httpx  # lightkube 1.x speaks httpx2
from lightkube import ApiError, Client, KubeConfig, codecs
from lightkube.generic_resource import create_namespaced_resource
from lightkube.utils.quantity import parse_quantity
from lightkube.resources.apps_v1 import Deployment, StatefulSet
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Namespace, Node, Pod
from lightkube.types import CascadeType

from odoosaas import apps
from odoosaas.drivers import Observed
from odoosaas.drivers.k8s import specs
from odoosaas.errors import PermanentError, TemporaryError

IngressRoute = create_namespaced_resource("traefik.io", "v1alpha1", "IngressRoute", "ingressroutes")
PodMetrics = create_namespaced_resource("metrics.k8s.io", "v1beta1", "PodMetrics", "pods")


def converted(call, missing_ok: bool = False):
    """Run a client call; turn foreign exceptions into the reconciler's two errors (or None: not found)."""
    try:
        return call()
    except ApiError as exc:
        if exc.status.code == 404 and missing_ok:
            return None
        if exc.status.code in (409, 429) or exc.status.code >= 500:
            raise TemporaryError(f"Kubernetes: {exc.status.message}", delay=2) from exc
        raise PermanentError(f"Kubernetes refused it: {exc.status.message}") from exc
    except httpx.HTTPStatusError as exc:  # no Status body: e.g. a kind whose CRD is not installed
        if exc.response.status_code == 404:
            raise PermanentError(f"Kubernetes does not serve {exc.request.url.path} (is the CRD installed?)") from exc
        raise TemporaryError(f"Kubernetes answered {exc.response.status_code}", delay=2) from exc
    except httpx.HTTPError as exc:
        raise TemporaryError(f"Kubernetes API unreachable: {type(exc).__name__}", delay=3) from exc


class KubernetesDriver:
    def __init__(self, settings):
        self.settings = settings
        config = KubeConfig.from_file(settings.kubeconfig) if settings.kubeconfig else KubeConfig.from_service_account()
        self.client = Client(config, field_manager="odoosaas", timeout=30)

    def apply(self, tenant, spec) -> None:
        workload = apps.template(spec.app).k8s(spec, self.settings)
        ns = specs.namespace_name(spec.subdomain)
        self._tenant_namespace(spec)
        self._send(specs.secret("tenant", ns, workload.secret), specs.filestore(spec, self.settings.k8s_storage_class))
        if workload.init is not None:
            self._run_once(ns, specs.job("init", ns, workload.init, workload.uid))
        self._send(specs.deployment(spec, workload.container, workload.uid), specs.service(spec))

    def _tenant_namespace(self, spec) -> None:
        db_host, ns = spec.database["host"], specs.namespace_name(spec.subdomain)
        if self._made_here(ns) is False:
            raise PermanentError(f"namespace {ns} exists and was not made by this platform")
        self._send(specs.namespace(spec), specs.access(ns, self.settings))
        review = codecs.from_dict(specs.access_review(ns))  # RBAC sees a new RoleBinding a moment later
        if not converted(lambda: self.client.create(review)).status.allowed:
            raise TemporaryError(f"waiting for access to namespace {ns}", delay=0.2)
        self._send(*specs.quota(spec), *specs.network_policies(spec, self.settings, db_host))

    def _made_here(self, ns: str) -> bool | None:
        """Whether the namespace carries the platform's label (None: there is none). One without
        it is someone else's: never adopted, written into or deleted."""
        found = converted(lambda: self.client.get(Namespace, ns), missing_ok=True)
        return None if found is None else specs.MANAGED.items() <= (found.metadata.labels or {}).items()

    def _send(self, *objects: dict) -> list:
        """Server-side apply; each object comes back as the server holds it now, status included."""
        return [converted(lambda: self.client.apply(codecs.from_dict(obj), force=True)) for obj in objects]

    def _run_once(self, ns: str, job: dict) -> None:
        """A Job that must have succeeded before the app starts (Odoo's first initialisation);
        then those of earlier specs (another image or database host) are removed."""
        name, kind = job["metadata"]["name"], {specs.JOB_LABEL: job["metadata"]["labels"][specs.JOB_LABEL]}
        status = self._send(job)[0].status
        if status and any(c.type == "Failed" and c.status == "True" for c in status.conditions or []):
            raise PermanentError(f"Initialising the database failed; see the logs of the Job {name}.")
        if not (status and status.succeeded):
            raise TemporaryError("initialising the database", delay=2)
        jobs = {j.metadata.name for j in converted(lambda: list(self.client.list(Job, namespace=ns, labels=kind)))}
        for old in jobs - {name}:  # Background: a Job's pods go with it (the API's default orphans them)
            converted(lambda: self.client.delete(Job, old, namespace=ns, cascade=CascadeType.BACKGROUND),
                      missing_ok=True)

    def route(self, tenant, spec, maintenance: bool = False) -> str:  # maintenance: Traefik's 503, no pod ready
        self._send(*specs.routes(spec, self.settings))
        if not spec.domains:  # their IngressRoute goes with the last one
            ns = specs.namespace_name(spec.subdomain)
            converted(lambda: self.client.delete(IngressRoute, "domains", namespace=ns), missing_ok=True)
        return f"{self.settings.public_scheme}://{spec.subdomain}.{self.settings.base_domain}"

    def stop(self, tenant) -> None:
        ns = specs.namespace_name(tenant.subdomain)
        if not self._made_here(ns):
            return
        idle = {"spec": {"replicas": 0}}  # no Deployment (None): nothing runs
        converted(lambda: self.client.patch(Deployment, "app", idle, namespace=ns, patch_type="merge"), missing_ok=True)

    def delete(self, tenant) -> None:
        """Delete the namespace if the platform made it, then wait until the namespace controller has emptied it."""
        ns = specs.namespace_name(tenant.subdomain)
        if self._made_here(ns):  # else gone, or someone else's: left alone
            converted(lambda: self.client.delete(Namespace, ns), missing_ok=True)
            raise TemporaryError("waiting for the namespace to be removed", delay=1)

    def observe(self, tenant, spec) -> Observed:
        ns = specs.namespace_name(spec.subdomain)
        deployment = converted(lambda: self.client.get(Deployment, "app", namespace=ns))
        pods = converted(lambda: list(self.client.list(Pod, namespace=ns, labels={"app": "odoo"})))
        node = next((p.spec.nodeName for p in pods if p.spec and p.spec.nodeName), "")
        if not (deployment.status and deployment.status.availableReplicas):
            phases = ", ".join(sorted({p.status.phase for p in pods if p.status})) or "no pod yet"
            return Observed(False, node=node, detail=f"waiting for the app ({phases})")
        return Observed(True, node=node)

    def usage(self, tenant) -> dict:
        """CPU and memory from metrics.k8s.io when the cluster serves it, else the tier's limits."""
        ns = specs.namespace_name(tenant.subdomain)
        try:
            pods = list(self.client.list(PodMetrics, namespace=ns))
        except (ApiError, httpx.HTTPError):
            return {"source": "limits", "memory_bytes": tenant.resources["memory_mb"] * 2**20,
                    "cpu_millicores": tenant.resources["cpu_millicores"]}
        used = [c["usage"] for pod in pods for c in pod.get("containers", [])]
        return {"source": "metrics.k8s.io", "memory_bytes": int(sum(parse_quantity(u["memory"]) for u in used)),
                "cpu_millicores": int(sum(parse_quantity(u["cpu"]) for u in used) * 1000)}

    def nodes(self) -> list[str]:
        return [n.metadata.name for n in converted(lambda: list(self.client.list(Node)))]

    def ping(self) -> None:
        self.client.get(Namespace, "default")

    def server_address(self, name: str, kind: str, subdomain: str) -> tuple[str, int]:
        ns = specs.namespace_name(subdomain) if kind == "dedicated" else self.settings.k8s_platform_namespace
        return f"{name}.{ns}.svc.cluster.local", 5432

    def ensure_db_server(self, server, admin: dict, spec) -> None:
        """A StatefulSet in the tenant's namespace (dedicated) or the platform's (shared)."""
        ns = server.host.split(".")[1]
        if server.kind == "dedicated":
            self._tenant_namespace(spec)
        status = self._send(specs.secret(server.name, ns, {"password": admin["password"]}),
                            *specs.postgres(server.name, ns, self.settings, spec.resources.storage_gb))[-1].status
        if not (status and status.readyReplicas):
            raise TemporaryError("waiting for PostgreSQL to start", delay=2)

    def delete_db_server(self, server) -> None:
        ns = server.host.split(".")[1]
        if ns == self.settings.k8s_platform_namespace or self._made_here(ns):
            converted(lambda: self.client.delete(StatefulSet, server.name, namespace=ns), missing_ok=True)
