"""Billing providers. The free tier is the default; Kill Bill implements the same verbs.

`check_create` is asked before an instance is made; `created`/`deleted` are told after.
"""
from typing import Protocol

from sqlalchemy import func, select

from odoosaas.errors import Conflict
from odoosaas.store.models import Tenant


class BillingProvider(Protocol):
    def check_create(self, db, user, tier: str) -> None: ...
    def created(self, tenant: Tenant) -> None: ...
    def deleted(self, tenant: Tenant) -> None: ...


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
        pass

    def deleted(self, tenant: Tenant) -> None:
        pass


def make_billing(settings) -> BillingProvider:
    return FreeTier(settings.free_max_instances)
