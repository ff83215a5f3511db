"""Runtime drivers: where tenants' databases, apps and routes really live.

One interface for every runtime; the reconciler calls these verbs, each idempotent.
"""
from dataclasses import dataclass
from typing import Protocol


@dataclass
class Observed:
    ready: bool
    node: str = ""
    url: str = ""
    detail: str = ""


class Driver(Protocol):
    name: str

    def ping(self) -> None: ...
    def nodes(self) -> list[str]: ...
    def server_address(self, name: str, kind: str, subdomain: str) -> tuple[str, int]: ...
    def ensure_db_server(self, server, admin: dict, spec) -> None: ...
    def delete_db_server(self, server) -> None: ...
    def apply(self, tenant, spec) -> None: ...        # runtime objects, running
    def route(self, tenant, spec) -> str: ...         # -> public URL
    def stop(self, tenant) -> None: ...
    def delete(self, tenant) -> None: ...
    def observe(self, tenant, spec) -> Observed: ...
    def usage(self, tenant) -> dict: ...              # {source, memory_bytes, cpu_millicores}


def make_driver(settings) -> Driver:
    if settings.driver == "kubernetes":
        from odoosaas.drivers.k8s.driver import KubernetesDriver
        return KubernetesDriver(settings)
    from odoosaas.drivers.local import LocalDriver
    return LocalDriver(settings)
