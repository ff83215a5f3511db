"""The instance page's forms without a browser: a new admin password, and apps (Odoo only)."""
import re

from odoosaas.reconcile.worker import Worker
from tests.test_reconcile import app_login


def csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_admin_password_form_sets_it_and_keeps_it_out_of_the_page(app, client, alice):
    tenant_id = alice.create("formed", app="sample").json["tenant"]["id"]
    Worker(app.extensions["odoosaas"]).run_until_idle(60)
    client.post("/login", data={"csrf_token": csrf(client.get("/login").text), "email": alice.email,
                                "password": alice.password})
    page = client.get(f"/instances/{tenant_id}").text
    short = client.post(f"/instances/{tenant_id}/admin-password", data={"csrf_token": csrf(page), "password": "short"})
    assert short.status_code == 400 and "at least 8" in short.text
    done = client.post(f"/instances/{tenant_id}/admin-password",
                       data={"csrf_token": csrf(page), "password": "from-the-form-1"})
    assert done.status_code == 302 and "from-the-form-1" not in client.get(f"/instances/{tenant_id}").text
    Worker(app.extensions["odoosaas"]).run_until_idle(60)
    url = alice.get(f"/api/v1/tenants/{tenant_id}").json["tenant"]["url"]
    assert app_login(url, "owner@example.com", "from-the-form-1")
    assert not app_login(url, "owner@example.com", "admin-pass-1")
    app.extensions["odoosaas"].driver.close()


def log_in(client, email: str, password: str) -> None:
    client.post("/login", data={"csrf_token": csrf(client.get("/login").text), "email": email, "password": password})


def test_domain_and_move_forms_and_the_operators_moves_page(app, client, alice, operator):
    tenant_id = alice.create("formal", app="sample").json["tenant"]["id"]
    Worker(app.extensions["odoosaas"]).run_until_idle(60)
    log_in(client, alice.email, alice.password)
    page = client.get(f"/instances/{tenant_id}").text
    assert "Tier and database" in page and "Custom domains" in page
    bad = client.post(f"/instances/{tenant_id}/domains", data={"csrf_token": csrf(page), "name": "10.0.0.1"})
    assert bad.status_code == 400 and "IP address" in bad.text
    client.post(f"/instances/{tenant_id}/domains", data={"csrf_token": csrf(page), "name": "erp.formal.example"})
    assert "_odoosaas-challenge.erp.formal.example" in client.get(f"/instances/{tenant_id}").text
    asked = client.post(f"/instances/{tenant_id}/move",
                        data={"csrf_token": csrf(page), "target_strategy": "dedicated", "reason": "more room"})
    assert asked.status_code == 302 and "waiting for an operator" in client.get(f"/instances/{tenant_id}").text
    desk = app.test_client()  # the operator's browser
    log_in(desk, "ops@example.com", "operator-pass")
    listing = desk.get("/admin/migrations").text
    assert "formal" in listing and "more room" in listing and ">Approve<" in listing
    request_id = alice.get(f"/api/v1/tenants/{tenant_id}/migration-requests").json["items"][0]["id"]
    assert desk.post(f"/admin/migrations/{request_id}/approve", data={"csrf_token": csrf(listing)}).status_code == 302
    assert alice.get(f"/api/v1/tenants/{tenant_id}/migration-requests").json["items"][0]["status"] == "approved"
    assert client.get("/admin/migrations").status_code == 403  # customers see no operator page
    app.extensions["odoosaas"].driver.close()
