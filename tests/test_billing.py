"""Billing with the real Kill Bill (ODOOSAAS_BILLING=killbill): accounts, subscriptions with one trial per
customer, suspension when the trial's invoice stays unpaid, resumption on a payment method, plan changes,
cancellation, an outage during creation, a forged callback, storage usage on the invoice, monthly recurring
revenue, and the billing page in a browser.

The test clock is the whole Kill Bill server's: this module uses a Kill Bill tenant of its own (so also its own
catalog upload, done by the provider), and each test its own users."""
import socket
import threading
import time
from datetime import date, timedelta
from types import SimpleNamespace

import pytest
import waitress
from playwright.sync_api import expect

from odoosaas.billing.killbill import KillBill
from odoosaas.pg.clusters import free_port
from odoosaas.reconcile.worker import Worker
from tests.conftest import Caller, make_app
from tests.inspect import app_processes, tenant_row
from tests.test_web import browse, browser, form_login, log_in  # noqa: F401 (fixtures)


@pytest.fixture(scope="module")
def kb(killbill):
    tenant = killbill.new_tenant("billing")
    yield tenant
    tenant.client.close()


def billing_app(workdir, killbill, kb, url: str = "", **settings):
    return make_app(workdir, billing="killbill", killbill_url=url or killbill.url, killbill_user=killbill.admin_user,
                    killbill_password=killbill.admin_password, killbill_api_key=kb.api_key,
                    killbill_api_secret=kb.api_secret, **settings)


@pytest.fixture
def app(workdir, killbill, kb):
    app = billing_app(workdir, killbill, kb)
    yield app
    close(app)


def close(app):
    platform = app.extensions["odoosaas"]
    platform.billing.http.close()
    platform.driver.close()
    platform.store.dispose()


def converge(app, timeout=90):
    Worker(app.extensions["odoosaas"]).run_until_idle(timeout)


def until(check, timeout=20):
    """Kill Bill writes invoices and payments a moment after the event: poll."""
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, "Kill Bill did not get there in time"
        time.sleep(0.3)
    return found


def subscription(kb, tenant_id: str) -> dict:
    answer = kb.client.get("/1.0/kb/subscriptions", params={"externalKey": tenant_id})
    assert answer.status_code == 200, answer.text
    return answer.json()


def account(kb, user_id: str) -> dict:
    answer = kb.client.get("/1.0/kb/accounts", params={"externalKey": user_id, "accountWithBalance": "true"})
    assert answer.status_code == 200, answer.text
    return answer.json()


def create(caller, subdomain: str, **fields) -> str:
    answer = caller.create(subdomain, **fields)
    assert answer.status_code == 202, answer.json
    return answer.json["tenant"]["id"]


def tenant(caller, tenant_id: str) -> dict:
    return caller.get(f"/api/v1/tenants/{tenant_id}").json["tenant"]


def test_the_free_tier_lists_every_tier_at_no_price(workdir):
    app = make_app(workdir)
    client = app.test_client()
    plans = client.get("/api/v1/plans").json["items"]
    assert [(plan["tier"], plan["price"], plan["trial_days"]) for plan in plans] == [
        ("basic", 0, 0), ("standard", 0, 0), ("premium", 0, 0), ("enterprise", 0, 0)]
    assert client.post("/api/v1/billing/payment-method", json={"kind": "external"}).status_code == 401
    alice = Caller(client, "alice@example.com")
    assert alice.get("/api/v1/billing").json["invoices"] == []
    assert alice.post("/api/v1/billing/payment-method", json={"kind": "external"}).json["error"]["code"] == "not_billed"
    app.extensions["odoosaas"].store.dispose()


def test_trial_suspension_payment_second_instance_upgrade_and_deletion(app, kb):
    platform, http = app.extensions["odoosaas"], app.test_client()
    plans = http.get("/api/v1/plans").json["items"]
    assert [(plan["tier"], plan["price"], plan["currency"], plan["trial_days"]) for plan in plans] == [
        ("basic", 29, "EUR", 14), ("standard", 59, "EUR", 14), ("premium", 149, "EUR", 14), ("enterprise", 399, "EUR", 14)]

    # signup makes the Kill Bill account; the first instance subscribes to the trial plan
    alice = Caller(http, "alice@example.com")
    user_id = alice.tokens["user"]["id"]
    assert account(kb, user_id)["accountBalance"] == 0
    first = create(alice, "shop")
    converge(app)
    assert tenant(alice, first)["status"] == "running"
    started = subscription(kb, first)
    assert (started["planName"], started["phaseType"], started["state"]) == ("basic-monthly", "TRIAL", "ACTIVE")
    billing = alice.get("/api/v1/billing").json
    assert billing["payment_method"] is None and billing["account"] == {"balance": 0, "currency": "EUR"}
    [shown] = billing["subscriptions"]
    assert (shown["tenant_id"], shown["plan"], shown["phase"], shown["state"]) == (first, "basic-monthly", "trial", "active")
    assert shown["trial_end"] == shown["next_invoice_date"] > started["startDate"]

    # 15 days on: the trial is over, the month's invoice is unpaid, the sweep suspends the instance
    moved = kb.client.put("/1.0/kb/test/clock", params={"days": 15, "timeoutSec": 10})
    assert moved.status_code == 200, moved.text
    until(lambda: account(kb, user_id)["accountBalance"] == 29)
    platform.billing.sweep(platform)
    converge(app)
    suspended = tenant(alice, first)
    assert (suspended["status"], suspended["desired"]) == ("suspended", "suspended")
    assert "invoice is unpaid" in suspended["status_detail"] and "payment method" in suspended["status_detail"]
    assert app_processes(first) == [] and tenant_row(app, first).db_server_id  # stopped, its database kept
    unpaid = [(i["amount"], i["balance"], i["status"]) for i in alice.get("/api/v1/billing").json["invoices"]]
    assert unpaid == [(0, 0, "paid"), (29, 29, "unpaid")]
    assert alice.post(f"/api/v1/tenants/{first}/start").json["error"]["code"] == "suspended"

    # a forged callback claiming a payment: only a hint, the worker re-reads Kill Bill, nothing changes
    assert http.post("/api/v1/billing/notifications", json={
        "eventType": "INVOICE_PAYMENT_SUCCESS", "accountId": account(kb, user_id)["accountId"]}).status_code == 204
    assert platform.billing.woken.is_set()
    run_worker_loop(platform, seconds=3)
    assert not platform.billing.woken.is_set()  # the hint made the sweep run
    assert tenant(alice, first)["status"] == "suspended" and account(kb, user_id)["accountBalance"] == 29

    # a payment method pays the invoice and resumes the instance
    added = alice.post("/api/v1/billing/payment-method", json={"kind": "external"})
    assert added.status_code == 201 and added.json == {"payment_method": {"kind": "external"}}
    until(lambda: account(kb, user_id)["accountBalance"] == 0)
    converge(app)
    assert tenant(alice, first)["status"] == "running" and app_processes(first)
    billing = alice.get("/api/v1/billing").json
    assert [i["status"] for i in billing["invoices"]] == ["paid", "paid"]
    assert billing["payment_method"] == {"kind": "external"}

    # the second instance is paid from the first day (and paid at once: there is a payment method)
    second = create(alice, "shop-two", tier="standard")
    converge(app)
    paid = subscription(kb, second)
    assert (paid["planName"], paid["phaseType"]) == ("standard-monthly-notrial", "EVERGREEN")
    until(lambda: len(alice.get("/api/v1/billing").json["invoices"]) == 3)
    platform.billing.sweep(platform)
    converge(app)
    assert tenant(alice, second)["status"] == "running" and account(kb, user_id)["accountBalance"] == 0

    # an upgrade changes the plan (same family), a deletion cancels the subscription
    assert alice.patch(f"/api/v1/tenants/{first}", json={"tier": "standard"}).status_code == 202
    assert alice.delete(f"/api/v1/tenants/{second}").status_code == 202
    converge(app)
    assert subscription(kb, first)["planName"] == "standard-monthly"
    assert tenant(alice, first)["resources"]["connection_limit"] == 40
    assert subscription(kb, second)["state"] == "CANCELLED"
    assert tenant_row(app, second).status == "deleted"


def run_worker_loop(platform, seconds: float) -> None:
    stop = threading.Event()
    worker = threading.Thread(target=Worker(platform).run, args=(stop,))
    worker.start()
    time.sleep(seconds)
    stop.set()
    worker.join(30)


class Outage:
    """A port where Kill Bill is unreachable until `end()`, then forwarded to it."""

    def __init__(self, target: str):
        self.port, self.target = free_port(), int(target.rsplit(":", 1)[1])
        self.url, self.listener, self.open = f"http://127.0.0.1:{self.port}", None, []

    def end(self):
        self.listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            self.open += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self.pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def pipe(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self):
        for sock in [self.listener, *self.open]:
            if sock:
                sock.close()


def test_kill_bill_unreachable_delays_creation_until_it_answers(workdir, killbill, kb):
    outage = Outage(killbill.url)
    app = billing_app(workdir, killbill, kb, outage.url)
    try:
        http = app.test_client()
        bob = Caller(http, "bob@example.com")  # signup still works; the account is made later
        tenant_id = create(bob, "delayed")
        converge(app, timeout=4)
        waiting = tenant(bob, tenant_id)
        assert waiting["status"] == "creating" and waiting["progress"]["step"] == "billing"
        assert "billing service is unreachable" in waiting["progress"]["steps"][0]["detail"]
        assert bob.get("/api/v1/billing").json["error"]["code"] == "billing_unavailable"

        outage.end()
        converge(app)
        assert tenant(bob, tenant_id)["status"] == "running"
        assert subscription(kb, tenant_id)["planName"] == "basic-monthly"
        assert account(kb, bob.tokens["user"]["id"])["email"] == "bob@example.com"
    finally:
        close(app)
        outage.close()


def kill_bill_today(kb) -> date:
    return date.fromisoformat(kb.client.get("/1.0/kb/test/clock").json()["localDate"])


def usage(kb, subscription_id: str, day: date) -> list[dict]:
    answer = kb.client.get(f"/1.0/kb/usages/{subscription_id}/storage-gb",
                           params={"startDate": day.isoformat(), "endDate": (day + timedelta(days=1)).isoformat()})
    assert answer.status_code == 200, answer.text
    return answer.json()["rolledUpUnits"]


def usage_items(kb, account_id: str) -> list[tuple]:
    invoices = kb.client.get(f"/1.0/kb/accounts/{account_id}/invoices", params={"withItems": "true"}).json()
    return [(item["usageName"], item["amount"]) for invoice in invoices for item in invoice["items"]
            if item["itemType"] == "USAGE"]


def test_storage_above_the_allowance_is_reported_daily_and_invoiced(workdir, killbill, kb):
    """A basic tier without storage allowance: the sample app's few MB are one started GB a day."""
    app = billing_app(workdir, killbill, kb, tiers={"basic": {"storage_gb": 0}})
    try:
        platform, http = app.extensions["odoosaas"], app.test_client()
        carol = Caller(http, "carol@example.com")
        tenant_id = create(carol, "stored")
        converge(app)
        account_id = account(kb, carol.tokens["user"]["id"])["accountId"]
        assert platform.billing.revenue(platform) == 0  # in its trial: no revenue yet
        platform.billing.sweep(platform)  # a trial day's storage is recorded (and never charged: see below)
        trial_day, subscription_id = kill_bill_today(kb), subscription(kb, tenant_id)["subscriptionId"]
        assert usage(kb, subscription_id, trial_day) == [{"unitType": "storage-gb", "amount": 1}]

        assert kb.client.put("/1.0/kb/test/clock", params={"days": 15, "timeoutSec": 10}).status_code == 200
        until(lambda: account(kb, carol.tokens["user"]["id"])["accountBalance"] == 29)
        assert carol.post("/api/v1/billing/payment-method", json={"kind": "external"}).status_code == 201
        until(lambda: account(kb, carol.tokens["user"]["id"])["accountBalance"] == 0)
        assert platform.billing.revenue(platform) == 29  # running and past its trial
        platform.auth.ensure_operator("ops@example.com", "operator-pass")
        desk = app.test_client()
        form_login(desk, "ops@example.com", "operator-pass")
        assert '<strong id="mrr">29 EUR</strong>' in desk.get("/admin/").text

        platform.billing.sweep(platform)
        day = kill_bill_today(kb)
        assert usage(kb, subscription_id, day) == [{"unitType": "storage-gb", "amount": 1}]
        platform.billing.sweep(platform)  # once a day: the same day reports nothing more
        KillBill(platform.settings).sweep(platform)  # nor does a restarted worker (the tracking id is the day's)
        assert usage(kb, subscription_id, day) == [{"unitType": "storage-gb", "amount": 1}]

        # a month on, the invoice for the month after the trial charges its one GB-day (0.02 EUR), not the trial's
        assert kb.client.put("/1.0/kb/test/clock", params={"days": 31, "timeoutSec": 10}).status_code == 200
        assert until(lambda: usage_items(kb, account_id)) == [("basic-monthly-storage", 0.02)]
    finally:
        close(app)


@pytest.fixture
def site(workdir, killbill, kb):
    """The platform as `odoosaas serve` runs it against Kill Bill, sweeping billing every second."""
    app, port = billing_app(workdir, killbill, kb, billing_check_seconds=1), free_port()
    platform, stop = app.extensions["odoosaas"], threading.Event()
    worker = threading.Thread(target=Worker(platform).run, args=(stop,), daemon=True)
    worker.start()
    server = waitress.create_server(app, host="127.0.0.1", port=port, threads=4)
    threading.Thread(target=server.run, daemon=True).start()
    yield SimpleNamespace(url=f"http://127.0.0.1:{port}", app=app, platform=platform)
    stop.set()
    worker.join(30)
    server.close()
    close(app)


def reload_until(page, selector: str, text: str, timeout: float = 60) -> None:
    """The billing page does not poll: reload it until the sweep has done its part."""
    deadline = time.monotonic() + timeout
    while text not in page.locator(selector).inner_text():
        assert time.monotonic() < deadline, f"{selector} never showed {text!r}"
        time.sleep(0.5)
        page.reload()


def test_customer_sees_trial_unpaid_invoice_suspension_and_pays_on_the_billing_page(site, kb, browse):
    http = site.app.test_client()
    dana = Caller(http, "dana@example.com")
    tenant_id = create(dana, "dana-shop")
    until(lambda: tenant(dana, tenant_id)["status"] == "running", timeout=90)
    trial_end = date.fromisoformat(subscription(kb, tenant_id)["startDate"]) + timedelta(days=14)

    page = browse()
    log_in(page, site, "dana@example.com")
    page.get_by_role("link", name="New instance").click()
    expect(page.get_by_label("Tier")).to_contain_text("basic: 29 EUR a month, 14-day trial (first instance)")
    page.get_by_role("link", name="Billing").click()
    instances = page.locator("table").first
    expect(instances).to_contain_text("dana-shop")
    expect(instances).to_contain_text("basic-monthly")
    expect(instances.locator("tbody td").nth(3)).to_have_text("trial")
    expect(instances.locator("tbody td").nth(4)).to_have_text(trial_end.isoformat())
    expect(page.locator("table").nth(1)).to_contain_text("paid")  # the trial's 0 EUR invoice

    # the trial ends unpaid: the worker's sweep suspends the instance, the page says so
    assert kb.client.put("/1.0/kb/test/clock", params={"days": 15, "timeoutSec": 10}).status_code == 200
    reload_until(page, "table >> nth=1", "unpaid")
    reload_until(page, "table >> nth=0", "suspended")
    expect(page.locator("table").nth(1).locator("tbody tr").last).to_contain_text("29.00 EUR")

    page.get_by_role("button", name="Add the external payment method").click()
    expect(page.get_by_text("External payment (bank transfer).")).to_be_visible()
    reload_until(page, "table >> nth=0", "running")
    assert "unpaid" not in page.locator("table").nth(1).inner_text()
    assert page.locator("table").nth(0).locator("tbody td").nth(3).inner_text() == "evergreen"
