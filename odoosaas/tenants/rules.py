"""Tenant rules as pure functions: names, tiers, database strategy (SI-5), placement."""
import re
from dataclasses import asdict, dataclass, replace

SUBDOMAIN = re.compile(r"[a-z](?:[a-z0-9]|-(?!-))*[a-z0-9]", re.ASCII)
RESERVED = frozenset(
    "www api admin app portal dashboard auth login signup mail smtp imap pop ftp ns1 ns2 static assets cdn "
    "status traefik billing support help docs blog ingress kube-system default localhost".split())
TIER_NAMES = ("basic", "standard", "premium", "enterprise")
COMPLIANCE = ("hipaa", "sox", "pci-dss")
# The steps that move a tenant to each desired state, in order (the progress bar's names).
PLANS = {"running": ("billing", "database", "runtime", "admin_credentials", "routing", "ready"),
         "stopped": ("runtime",), "suspended": ("runtime",), "deleted": ("backup", "runtime", "database", "billing")}


@dataclass(frozen=True)
class Resources:
    cpu_millicores: int
    memory_mb: int
    storage_gb: int
    connection_limit: int


# The tier table, in one place; settings may override single fields (ODOOSAAS_TIERS).
TIERS = {
    "basic": Resources(cpu_millicores=500, memory_mb=1024, storage_gb=5, connection_limit=20),
    "standard": Resources(cpu_millicores=1000, memory_mb=2048, storage_gb=20, connection_limit=40),
    "premium": Resources(cpu_millicores=2000, memory_mb=4096, storage_gb=50, connection_limit=80),
    "enterprise": Resources(cpu_millicores=4000, memory_mb=8192, storage_gb=200, connection_limit=150),
}


def resources(tier: str, overrides: dict | None = None) -> dict:
    """The tier's allocation as a tenant row keeps it (`Resources` fields)."""
    return asdict(replace(TIERS[tier], **(overrides or {}).get(tier, {})))


def subdomain_problem(name: str) -> str | None:
    """Why `name` cannot be a subdomain (the first rule it breaks), or None when it can."""
    return ("must be 3 to 30 characters" if not 3 <= len(name) <= 30 else
            "use a-z, 0-9 and single hyphens; start with a letter, end with a letter or digit"
            if not SUBDOMAIN.fullmatch(name) else
            "is reserved" if name in RESERVED else None)


def choose_strategy(tier: str, compliance: list[str], high_performance: bool,
                    expected_data_gb: float) -> tuple[str, str]:
    """SI-5: (strategy, the rule that chose it); the first rule that wants a dedicated server wins."""
    dedicated_because = (f"tier:{tier}" if tier in ("premium", "enterprise") else
                         f"compliance:{sorted(compliance)[0]}" if compliance else
                         "performance:high" if high_performance else
                         "volume:>5GB" if expected_data_gb > 5 else None)
    return ("dedicated", dedicated_because) if dedicated_because else ("shared", f"tier:{tier}")


def place(loads: dict[str, tuple[int, int]]) -> str | None:
    """Least-loaded shared server with room: `loads` maps name -> (tenants, capacity)."""
    with_room = [(count / capacity, count, name) for name, (count, capacity) in loads.items() if count < capacity]
    return min(with_room)[2] if with_room else None
