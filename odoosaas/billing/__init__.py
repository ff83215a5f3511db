"""Billing providers. The free tier is the default; Kill Bill (`killbill.py`) implements the same verbs
(`platform.build` makes the one ODOOSAAS_BILLING names).

`check_create(db, user, tier)` is asked before an instance is made (it raises to refuse); `signed_up(user)` is
told after a signup; `reconcile(ctx)` is the reconciler's `billing` step (it makes, changes and cancels the
instance's subscription); `sweep(platform)` runs periodically, sooner once `woken` is set;
`revenue(platform)` is the operators' monthly recurring revenue (None when unknown).
"""
import threading

from sqlalchemy import func, select

from odoosaas.errors import Conflict
from odoosaas.store.models import Tenant
from odoosaas.tenants import rules


class FreeTier:
    """Every tier allowed, at most `free_max_instances` live instances per user."""

    def __init__(self, max_instances: int):
        self.max_instances = max_instances
        self.woken = threading.Event()  # a hint that billing state changed: the worker sweeps now

    def check_create(self, db, user, tier: str) -> None:
        live = db.scalar(select(func.count()).select_from(Tenant)
                         .where(Tenant.owner_id == user.id, Tenant.desired != "deleted"))
        if live >= self.max_instances:
            raise Conflict(f"Your plan allows {self.max_instances} instances; delete one first.", "limit_reached")

    def signed_up(self, user) -> None:
        """Nothing to record: the count of live instances is the whole plan."""

    reconcile = sweep = signed_up

    def plans(self, settings) -> list[dict]:
        return [{"tier": tier, "price": 0, "currency": "EUR", "period": "month", "trial_days": 0,
                 "resources": rules.resources(tier, settings.tiers)} for tier in rules.TIER_NAMES]

    def overview(self, platform, user) -> dict:
        return {"account": None, "subscriptions": [], "invoices": [], "payment_method": None}

    def revenue(self, platform) -> float | None:
        return 0

    def add_payment_method(self, platform, user) -> dict:
        raise Conflict("The free tier takes no payments.", "not_billed")

