"""Billing providers. The free tier is the default; Kill Bill implements the same verbs.

`check_create(db, user, tier)` is asked before an instance is made (it raises to refuse);
`created(tenant)`/`deleted(tenant)` are told after.
"""
from sqlalchemy import func, select

from odoosaas.errors import Conflict
from odoosaas.store.models import Tenant


class FreeTier:
    """Every tier allowed, at most `free_max_instances` live instances per user."""

    def __init__(self, max_instances: int):
        self.max_instances = max_instances

    def check_create(self, db, user, tier: str) -> None:
        live = db.scalar(select(func.count()).select_from(Tenant)
                         .where(Tenant.owner_id == user.id, Tenant.desired != "deleted"))
        if live >= self.max_instances:
            raise Conflict(f"Your plan allows {self.max_instances} instances; delete one first.", "limit_reached")

    def created(self, tenant: Tenant) -> None:
        """Nothing to record: the count of live instances is the whole plan."""

    deleted = created


def make_billing(settings):
    return FreeTier(settings.free_max_instances)
