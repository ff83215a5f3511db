"""Kill Bill as the billing provider: an account per user (external key: the user id), a subscription per
tenant (external key: the tenant id) made by the reconciler's `billing` step, the catalog uploaded when the
repo's is newer. Kill Bill is the record: the sweep re-reads balances, callbacks only make it run sooner."""
import contextlib
import math
import xml.etree.ElementTree as ElementTree
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import select

from odoosaas.billing import FreeTier
from odoosaas.errors import ApiError, TemporaryError
from odoosaas.store.models import Tenant
from odoosaas.tenants import fleet, rules, service

CATALOG = Path(__file__).with_name("catalog.xml")


class Unavailable(ApiError, TemporaryError, status=503, code="billing_unavailable"):
    """Kill Bill unreachable or refusing: 503 in the API, a retry in the reconciler."""


class KillBill(FreeTier):
    def __init__(self, settings):
        super().__init__(settings.free_max_instances)
        self.http = httpx.Client(base_url=settings.killbill_url, timeout=30, headers={
            "X-Killbill-ApiKey": settings.killbill_api_key, "X-Killbill-ApiSecret": settings.killbill_api_secret,
            "X-Killbill-CreatedBy": "odoosaas"}, auth=(settings.killbill_user, settings.killbill_password))
        self.reported: dict[str, str] = {}  # tenant id -> the last day its storage was reported

    def call(self, method: str, path: str, **kwargs):
        """The answer's JSON; None for a 404 or an empty body."""
        try:
            answer = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise Unavailable(f"The billing service is unreachable ({type(exc).__name__}).") from None
        # a usage record's repeat (its tracking id is known) is no error: the usage was recorded
        if answer.status_code >= 400 and answer.status_code != 404 and "record with tracking ID" not in answer.text:
            raise Unavailable(f"The billing service answered {answer.status_code} to {method} {path}.")
        return answer.json() if answer.status_code != 404 and answer.content else None

    def ensure_catalog(self) -> None:
        """Upload the repo's catalog when its effectiveDate is newer than Kill Bill's latest version."""
        ours = datetime.fromisoformat(ElementTree.parse(CATALOG).findtext("effectiveDate"))
        if all(datetime.fromisoformat(v["effectiveDate"]) < ours for v in self.call("GET", "/1.0/kb/catalog")):
            self.call("POST", "/1.0/kb/catalog/xml", content=CATALOG.read_bytes(), headers={"Content-Type": "text/xml"})

    def account(self, user) -> dict:
        """The user's account with its balance, made when it is missing."""
        query = {"externalKey": user.id, "accountWithBalance": "true"}
        if not (found := self.call("GET", "/1.0/kb/accounts", params=query)):
            self.call("POST", "/1.0/kb/accounts", json={"name": user.full_name or user.email, "email": user.email,
                                                        "externalKey": user.id, "currency": "EUR"})
        return found or self.call("GET", "/1.0/kb/accounts", params=query)

    def signed_up(self, user) -> None:
        with contextlib.suppress(Unavailable):  # else made when first needed (an instance, the billing page)
            self.account(user)

    def reconcile(self, ctx) -> None:
        """The tenant's subscription: made on the tier's plan, changed with the tier, cancelled on delete."""
        tenant = ctx.tenant
        subscription = self.call("GET", "/1.0/kb/subscriptions", params={"externalKey": tenant.id})
        path = f"/1.0/kb/subscriptions/{(subscription or {}).get('subscriptionId')}"
        if ctx.kind == "deleted":
            if subscription and subscription["state"] != "CANCELLED":
                self.call("DELETE", path, params={"entitlementPolicy": "IMMEDIATE", "billingPolicy": "IMMEDIATE"})
        elif subscription is None:
            self.ensure_catalog()
            with ctx.platform.store.session() as db:  # one trial per customer: their first instance ever (even deleted)
                first = db.scalar(select(Tenant.id).filter_by(owner_id=tenant.owner_id).order_by(Tenant.created_at))
            plan = f"{tenant.tier}-monthly" + ("" if first == tenant.id else "-notrial")
            self.call("POST", "/1.0/kb/subscriptions", json={"accountId": self.account(tenant.owner)["accountId"],
                      "planName": plan, "externalKey": tenant.id, "bundleExternalKey": tenant.id})
        elif subscription["productName"] != tenant.tier:  # same family: a trial keeps the rest of it
            family = subscription["planName"].removeprefix(subscription["productName"])
            self.call("PUT", path, json={"planName": tenant.tier + family})

    def sweep(self, platform) -> None:
        """Suspend the instances of accounts with an unpaid balance, resume them once paid; report storage."""
        # Kill Bill's day (its test clock in test mode; the call answers real time otherwise), else today in UTC
        day = (self.call("GET", "/1.0/kb/test/clock") or {"localDate": str(datetime.now(UTC).date())})["localDate"]
        with platform.store.session() as db:
            tenants = list(db.scalars(select(Tenant).where(Tenant.desired.in_(("running", "suspended")))))
            for owner in {tenant.owner for tenant in tenants}:  # first: a failed report must not hold it up
                service.suspend(platform, owner.id, self.account(owner)["accountBalance"] > 0)
            for tenant in filter(lambda tenant: self.reported.get(tenant.id) != day, tenants):
                self.report_storage(platform, tenant, day)

    def report_storage(self, platform, tenant: Tenant, day: str) -> None:
        """The day's started GBs above the tier's allowance as `storage-gb` usage; the tracking id
        `<tenant>-<day>` makes a second report of the day (a restart, another worker) a no-op."""
        size = fleet.database_usage(platform, tenant)["db_size_bytes"]
        gb = math.ceil((size or 0) / 2 ** 30 - rules.resources(tenant.tier, platform.settings.tiers)["storage_gb"])
        subscription = gb > 0 and self.call("GET", "/1.0/kb/subscriptions", params={"externalKey": tenant.id})
        if subscription:
            self.call("POST", "/1.0/kb/usages", json={
                "subscriptionId": subscription["subscriptionId"], "trackingId": f"{tenant.id}-{day}",
                "unitUsageRecords": [{"unitType": "storage-gb", "usageRecords": [{"recordDate": day, "amount": gb}]}]})
        if size is not None:
            self.reported[tenant.id] = day

    def overview(self, platform, user) -> dict:
        account = self.account(user)
        base = f"/1.0/kb/accounts/{account['accountId']}"
        subscriptions = [s for bundle in self.call("GET", f"{base}/bundles") for s in bundle["subscriptions"]]
        invoices = [{"date": i["invoiceDate"], "amount": i["amount"], "balance": i["balance"],  # account currency
                     "status": "unpaid" if i["balance"] > 0 else "paid"} for i in self.call("GET", f"{base}/invoices")]
        return {"account": {"balance": account["accountBalance"], "currency": account["currency"]},
                "subscriptions": [subscription_view(s) for s in subscriptions], "invoices": invoices,
                "payment_method": {"kind": "external"} if self.call("GET", f"{base}/paymentMethods") else None}

    def add_payment_method(self, platform, user) -> dict:
        """Kill Bill's external payment method (no card processor here), then the unpaid invoices paid with it."""
        account = self.account(user)
        base = f"/1.0/kb/accounts/{account['accountId']}"
        if not self.call("GET", f"{base}/paymentMethods"):
            self.call("POST", f"{base}/paymentMethods", params={"isDefault": "true"},
                      json={"pluginName": "__EXTERNAL_PAYMENT__"})
        if account["accountBalance"] > 0:
            self.call("POST", f"{base}/invoicePayments")
        service.suspend(platform, user.id, self.account(user)["accountBalance"] > 0)  # paid: its instances resume
        return {"kind": "external"}

    def revenue(self, platform) -> float | None:
        """Monthly recurring revenue: the plan prices of running instances past their trial (None: unreachable)."""
        with platform.store.session() as db:
            running = set(db.scalars(select(Tenant.id).where(Tenant.status == "running")))
        prices = {plan["tier"]: plan["price"] for plan in self.plans(platform.settings)}
        try:
            bundles = self.call("GET", "/1.0/kb/bundles/pagination", params={"limit": 10 ** 9})
        except Unavailable:
            return None
        return sum(prices[s["productName"]] for bundle in bundles for s in bundle["subscriptions"]
                   if s["externalKey"] in running and s["phaseType"] == "EVERGREEN")

    def plans(self, settings) -> list[dict]:
        catalog = {plan.findtext("product"): plan for plan in ElementTree.parse(CATALOG).getroot().iter("plan")
                   if plan.get("name", "").endswith("-monthly")}
        return [{**plan, "price": float(catalog[plan["tier"]].findtext("finalPhase/recurring/*/price/value")),
                 "trial_days": int(catalog[plan["tier"]].findtext("initialPhases/phase/duration/number"))}
                for plan in super().plans(settings)]


def subscription_view(subscription: dict) -> dict:
    trial_end = next((e["effectiveDate"] for e in subscription["events"] if e["eventType"] == "PHASE"), None)
    next_invoice = max(filter(None, (subscription["chargedThroughDate"], trial_end)), default=None)
    # a cancelled one has no next invoice
    return {"tenant_id": subscription["externalKey"], "plan": subscription["planName"],
            "phase": subscription["phaseType"].lower(), "state": subscription["state"].lower(), "trial_end": trial_end,
            "next_invoice_date": next_invoice if subscription["state"] == "ACTIVE" else None}
