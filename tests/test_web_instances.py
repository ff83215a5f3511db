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
