"""Billing with the real Kill Bill (ODOOSAAS_BILLING=killbill): accounts, subscriptions with one trial per
customer, suspension when the trial's invoice stays unpaid, resumption on a payment method, plan changes,
cancellation, an outage during creation, and a forged callback.

The test clock is the whole Kill Bill server's: this module uses a Kill Bill tenant of its own (so also its own
catalog upload, done by the provider), and each test its own users."""
import socket
import threading
import time

import pytest

from odoosaas.pg.clusters import free_port
from odoosaas.reconcile.worker import Worker
from tests.conftest import Caller, make_app
from tests.inspect import app_processes, tenant_row


@pytest.fixture(scope="module")
def kb(killbill):
    tenant = killbill.new_tenant("billing")
    yield tenant
    tenant.client.close()


def billing_app(workdir, killbill, kb, url: str = ""):
    return make_app(workdir, billing="killbill", killbill_url=url or killbill.url, killbill_user=killbill.admin_user,
                    killbill_password=killbill.admin_password, killbill_api_key=kb.api_key,
                    killbill_api_secret=kb.api_secret)


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
