"""Runtime drivers: where tenants' databases, apps and routes really live.

One interface for every runtime (`local.py`, `k8s/`); the reconciler calls these verbs, each idempotent:
- `ping()`; `nodes() -> list[str]`;
- `server_address(name, kind, subdomain) -> (host, port)`; `ensure_db_server(server, admin: dict, spec)`;
  `delete_db_server(server)`;
- `apply(tenant, spec)`: runtime objects, running; `route(tenant, spec) -> public URL`; `stop(tenant)`;
  `delete(tenant)`; `observe(tenant, spec) -> Observed`;
- `usage(tenant) -> {source, memory_bytes, cpu_millicores}`.
"""
from dataclasses import dataclass


@dataclass
class Observed:
    ready: bool
    node: str = ""
    detail: str = ""


def make_driver(settings):
    if settings.driver == "kubernetes":
        from odoosaas.drivers.k8s.driver import KubernetesDriver
        return KubernetesDriver(settings)
    from odoosaas.drivers.local import LocalDriver
    return LocalDriver(settings)
