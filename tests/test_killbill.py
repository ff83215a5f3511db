"""The billing catalog (odoosaas/billing/catalog.xml) on a real Kill Bill: it loads, lists its eight plans at
their prices, trials last 14 days and end in a full month's invoice, the no-trial plans are paid at once,
tier changes are immediate, and storage usage above the allowance reaches the invoice.

The test clock is the server's, shared with every other test: each test uses accounts of its own and reads
the server's date rather than real time."""
import secrets
import time
from datetime import date, timedelta
from pathlib import Path

import pytest

CATALOG = Path(__file__).resolve().parents[1] / "odoosaas" / "billing" / "catalog.xml"
PRICES = {"basic": 29, "standard": 59, "premium": 149, "enterprise": 399}  # EUR a month, as the README says
STORAGE_PRICE = 0.02  # EUR per GB-day above the allowance


@pytest.fixture(scope="module")
def kb(killbill):
    """A Kill Bill tenant of this module's, with the catalog uploaded: the upload is the first check
    (Kill Bill validates it against the catalog schema of its version and answers 400 otherwise)."""
    tenant = killbill.new_tenant("catalog")
    uploaded = tenant.client.post("/1.0/kb/catalog/xml", content=CATALOG.read_bytes(),
                                  headers={"Content-Type": "text/xml"})
    assert uploaded.status_code == 201, uploaded.text
    yield tenant.client
    tenant.client.close()


def new_account(kb) -> str:
    created = kb.post("/1.0/kb/accounts", json={"name": "Customer", "externalKey": secrets.token_hex(8),
                                                "currency": "EUR"})
    assert created.status_code == 201, created.text
    return created.headers["location"].rsplit("/", 1)[1]


def subscribe(kb, account_id: str, plan: str) -> dict:
    created = kb.post("/1.0/kb/subscriptions", json={"accountId": account_id, "planName": plan})
    assert created.status_code == 201, created.text
    return kb.get(created.headers["location"]).json()


def invoices(kb, account_id: str, count: int) -> list[dict]:
    """The account's invoices once there are `count` (Kill Bill writes them a moment after the event)."""
    deadline = time.monotonic() + 15
    while True:
        found = kb.get(f"/1.0/kb/accounts/{account_id}/invoices", params={"withItems": "true"}).json()
        if len(found) >= count or time.monotonic() > deadline:
            return sorted(found, key=lambda invoice: int(invoice["invoiceNumber"]))
        time.sleep(0.2)


def move_clock(kb, days: int) -> None:
    moved = kb.put("/1.0/kb/test/clock", params={"days": days, "timeoutSec": 10})
    assert moved.status_code == 200, moved.text


def test_catalog_lists_eight_monthly_plans_with_their_prices(kb):
    versions = kb.get("/1.0/kb/catalog").json()
    plans = {plan["name"]: (product["name"], plan) for product in versions[-1]["products"] for plan in product["plans"]}
    assert sorted(plans) == sorted(f"{tier}-monthly{suffix}" for tier in PRICES for suffix in ("", "-notrial"))
    for name, (product, plan) in plans.items():
        *trial, evergreen = plan["phases"]
        assert plan["billingPeriod"] == "MONTHLY"
        assert evergreen["type"] == "EVERGREEN"
        assert evergreen["prices"] == [{"currency": "EUR", "value": PRICES[product]}]
        assert [phase["type"] for phase in trial] == ([] if name.endswith("-notrial") else ["TRIAL"])
        for phase in trial:
            assert phase["duration"] == {"unit": "DAYS", "number": 14} and phase["prices"] == phase["fixedPrices"] == []
        blocks = [block for usage in evergreen["usages"] for tier in usage["tiers"] for block in tier["blocks"]]
        assert [(block["unit"], block["prices"]) for block in blocks] == [
            ("storage-gb", [{"currency": "EUR", "value": STORAGE_PRICE}])]


def test_trial_ends_in_a_full_month_invoice_then_storage_usage_is_billed(kb):
    account = new_account(kb)
    subscription = subscribe(kb, account, "standard-monthly")
    assert (subscription["phaseType"], subscription["state"]) == ("TRIAL", "ACTIVE")
    assert [invoice["amount"] for invoice in invoices(kb, account, 1)] == [0]

    move_clock(kb, 15)
    path = f"/1.0/kb/subscriptions/{subscription['subscriptionId']}"
    assert kb.get(path).json()["phaseType"] == "EVERGREEN"
    after_trial = invoices(kb, account, 2)
    assert [(invoice["amount"], invoice["currency"]) for invoice in after_trial] == [(0, "EUR"), (59, "EUR")]

    # 30 GB-days above the allowance, recorded on the server's today, show on the next month's invoice.
    today = kb.get("/1.0/kb/test/clock").json()["localDate"]
    recorded = kb.post("/1.0/kb/usages", json={
        "subscriptionId": subscription["subscriptionId"], "trackingId": secrets.token_hex(8),
        "unitUsageRecords": [{"unitType": "storage-gb", "usageRecords": [{"recordDate": today, "amount": 30}]}]})
    assert recorded.status_code == 201, recorded.text
    move_clock(kb, 31)
    items = [(item["itemType"], item["usageName"], item["amount"]) for item in invoices(kb, account, 3)[2]["items"]]
    usage = ("USAGE", "standard-monthly-storage", round(30 * STORAGE_PRICE, 2))
    assert sorted(items, key=str) == [("RECURRING", None, 59), usage]


def test_a_plan_without_trial_is_paid_from_the_first_day(kb):
    account = new_account(kb)
    subscription = subscribe(kb, account, "standard-monthly-notrial")
    assert (subscription["phaseType"], subscription["state"]) == ("EVERGREEN", "ACTIVE")
    assert [(invoice["amount"], invoice["currency"]) for invoice in invoices(kb, account, 1)] == [(59, "EUR")]


def test_tier_changes_are_immediate(kb):
    subscription = subscribe(kb, new_account(kb), "basic-monthly-notrial")
    path = f"/1.0/kb/subscriptions/{subscription['subscriptionId']}"
    changed = kb.put(path, json={"planName": "premium-monthly-notrial"})
    assert changed.status_code == 204, changed.text
    assert kb.get(path).json()["planName"] == "premium-monthly-notrial"  # not at the end of the paid month


def test_a_tier_change_in_the_trial_keeps_the_rest_of_it(kb):
    subscription = subscribe(kb, new_account(kb), "basic-monthly")
    trial_end = date.fromisoformat(subscription["startDate"][:10]) + timedelta(days=14)
    move_clock(kb, 5)
    path = f"/1.0/kb/subscriptions/{subscription['subscriptionId']}"
    changed = kb.put(path, json={"planName": "standard-monthly"})
    assert changed.status_code == 204, changed.text
    now = kb.get(path).json()
    assert (now["planName"], now["phaseType"]) == ("standard-monthly", "TRIAL")
    phases = [event for event in now["events"] if event["eventType"] == "PHASE"]
    # The trial still ends 14 days after the start, not 14 days after the change.
    assert [event["effectiveDate"][:10] for event in phases][-1] == trial_end.isoformat()
