"""Operator routes: every tenant, filters, search, detail with events, overview, servers."""
from tests.conftest import Caller


def test_admin_routes_refuse_customers(alice):
    for path in ("/api/v1/admin/tenants", "/api/v1/admin/overview", "/api/v1/admin/db-servers"):
        r = alice.get(path)
        assert r.status_code == 403 and r.json["error"]["code"] == "forbidden"


def test_list_filter_search(operator, alice, bob):
    alice.create("alpha-shop", tier="premium")
    alice.create("beta-shop")
    bob.create("gamma")
    items = operator.get("/api/v1/admin/tenants").json["items"]
    assert {t["subdomain"] for t in items} == {"alpha-shop", "beta-shop", "gamma"}
    assert {t["owner_email"] for t in items} == {"alice@example.com", "bob@example.com"}
    dedicated = operator.get("/api/v1/admin/tenants?db_strategy=dedicated").json["items"]
    assert [t["subdomain"] for t in dedicated] == ["alpha-shop"]
    assert [t["subdomain"] for t in operator.get("/api/v1/admin/tenants?tier=premium").json["items"]] == ["alpha-shop"]
    by_owner = operator.get("/api/v1/admin/tenants?q=BOB@").json["items"]
    assert [t["subdomain"] for t in by_owner] == ["gamma"]
    by_name = operator.get("/api/v1/admin/tenants?q=shop&status=creating").json["items"]
    assert sorted(t["subdomain"] for t in by_name) == ["alpha-shop", "beta-shop"]
    assert operator.get("/api/v1/admin/tenants?status=running").json["items"] == []


def test_detail_has_owner_and_events(operator, alice):
    tenant_id = alice.create("eventful").json["tenant"]["id"]
    alice.post(f"/api/v1/tenants/{tenant_id}/stop")
    detail = operator.get(f"/api/v1/admin/tenants/{tenant_id}").json["tenant"]
    assert detail["owner_email"] == "alice@example.com"
    assert [e["kind"] for e in detail["events"]] == ["stop", "requested"]
    assert operator.get("/api/v1/admin/tenants/nope").status_code == 404


def test_overview_counts(operator, alice, bob):
    alice.create("one")
    alice.create("two", compliance=["sox"])
    bob.create("three", tier="standard")
    overview = operator.get("/api/v1/admin/overview").json
    assert overview["tenants_by_status"] == {"creating": 3}
    assert overview["tenants_by_strategy"] == {"shared": 2, "dedicated": 1}
    assert overview["tenants_by_tier"] == {"basic": 2, "standard": 1}
    assert len(overview["nodes"]) == 1 and set(overview["nodes"][0]) == {"name", "tenants"}
    assert overview["db_servers"] == []
    assert operator.get("/api/v1/admin/db-servers").json == {"items": []}


def test_operator_from_settings(workdir):
    from odoosaas.cli import start_up
    from tests.conftest import make_app
    app = make_app(workdir, admin_email="root@example.com", admin_password="root-password")
    start_up(app.extensions["odoosaas"])
    login = app.test_client().post("/api/v1/auth/login", json={"email": "root@example.com", "password": "root-password"})
    assert login.json["user"]["is_admin"] is True
    assert Caller(app.test_client(), "x@example.com").tokens["user"]["is_admin"] is False
