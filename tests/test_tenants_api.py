"""The caller's own instances through the API (no worker: they stay `creating`)."""
import threading

import pytest

from odoosaas.store.models import Tenant
from tests.conftest import Caller, make_app

TENANT_FIELDS = {"id", "subdomain", "url", "app", "tier", "status", "status_detail", "progress", "db_strategy",
                 "db_strategy_reason", "db_server", "admin_email", "node", "created_at", "updated_at"}


def count_tenants(app) -> int:
    with app.extensions["odoosaas"].store.session() as db:
        return db.query(Tenant).count()


def test_create_read_list(app, alice):
    r = alice.create("acme", tier="standard")
    assert r.status_code == 202
    tenant = r.json["tenant"]
    assert set(tenant) >= TENANT_FIELDS
    assert tenant["status"] == "creating" and tenant["app"] == "sample"  # no odoo here: the fallback
    assert tenant["db_strategy"] == "shared" and tenant["db_strategy_reason"] == "tier:standard"
    assert tenant["url"] == "http://acme.localhost"
    assert tenant["resources"] == {"cpu_millicores": 1000, "memory_mb": 2048, "storage_gb": 20, "connection_limit": 40}
    assert [s["name"] for s in tenant["progress"]["steps"]] == ["billing", "database", "runtime",
                                                                "admin_credentials", "routing", "ready"]
    assert tenant["progress"]["done"] == 0 and tenant["progress"]["total"] == 6
    assert "admin-pass-1" not in str(r.json)
    assert alice.get(f"/api/v1/tenants/{tenant['id']}").json["tenant"]["subdomain"] == "acme"
    assert [t["id"] for t in alice.get("/api/v1/tenants").json["items"]] == [tenant["id"]]


@pytest.mark.parametrize("fields, strategy, reason", [
    ({"tier": "premium"}, "dedicated", "tier:premium"),
    ({"tier": "enterprise"}, "dedicated", "tier:enterprise"),
    ({"compliance": ["hipaa"]}, "dedicated", "compliance:hipaa"),
    ({"high_performance": True}, "dedicated", "performance:high"),
    ({"expected_data_gb": 6}, "dedicated", "volume:>5GB"),
    ({"expected_data_gb": 5}, "shared", "tier:basic"),
])
def test_strategy_through_api(alice, fields, strategy, reason):
    tenant = alice.create("shop-1", **fields).json["tenant"]
    assert (tenant["db_strategy"], tenant["db_strategy_reason"]) == (strategy, reason)


@pytest.mark.parametrize("subdomain", ["ab", "a" * 31, "1abc", "abc-", "a--b", "xn--abc", "a;drop", "../x", "ACME",
                                       "ac_me", "аcme", "www", "api", "admin", "acme.com", " ", ""])
def test_bad_subdomains_are_refused(app, alice, subdomain):
    r = alice.create(subdomain)
    assert r.status_code == 400 and "subdomain" in r.json["error"]["fields"]
    assert count_tenants(app) == 0


@pytest.mark.parametrize("fields, field", [
    ({"admin_email": "nope"}, "admin_email"), ({"admin_password": "short"}, "admin_password"),
    ({"tier": "gold"}, "tier"), ({"compliance": ["gdpr"]}, "compliance.0"), ({"app": "wordpress"}, "app"),
    ({"expected_data_gb": -1}, "expected_data_gb"), ({"high_performance": "very"}, "high_performance"),
    ({"surprise": 1}, "surprise"),
])
def test_bad_fields_are_refused(app, alice, fields, field):
    r = alice.create("valid-name", **fields)
    assert r.status_code == 400 and field in r.json["error"]["fields"], r.json
    assert count_tenants(app) == 0


def test_missing_body(alice):
    r = alice.post("/api/v1/tenants")
    assert r.status_code == 400 and r.json["error"]["code"] == "invalid"


def test_subdomain_taken_and_availability(client, alice, bob):
    assert client.get("/api/v1/subdomains/acme").json == {"name": "acme", "available": True, "reason": ""}
    assert alice.create("acme").status_code == 202
    r = bob.create("acme")
    assert r.status_code == 409 and r.json["error"]["code"] == "subdomain_taken"
    assert client.get("/api/v1/subdomains/acme").json["available"] is False
    assert client.get("/api/v1/subdomains/www").json["reason"] == "is reserved"


def test_subdomain_race_gives_one_winner(workdir, store_url):
    app = make_app(workdir, database_url=store_url)
    users = [Caller(app.test_client(), f"racer{i}@example.com") for i in range(2)]
    barrier, codes = threading.Barrier(2), []

    def race(caller):
        barrier.wait()
        codes.append(caller.create("contested").status_code)
    threads = [threading.Thread(target=race, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [202, 409]
    app.extensions["odoosaas"].store.dispose()


def test_other_users_tenant_is_404_on_every_route(app, alice, bob):
    tenant_id = alice.create("private").json["tenant"]["id"]
    for verb, path in (("get", ""), ("delete", ""), ("post", "/stop"), ("post", "/start")):
        r = getattr(bob, verb)(f"/api/v1/tenants/{tenant_id}{path}")
        assert r.status_code == 404 and r.json["error"]["code"] == "not_found"
    assert bob.get("/api/v1/tenants").json["items"] == []
    assert alice.get(f"/api/v1/tenants/{tenant_id}").json["tenant"]["status"] == "creating"
    assert alice.get(f"/api/v1/tenants/{tenant_id}").json["tenant"]["desired"] == "running"


def test_unknown_tenant_and_no_token(client, alice):
    assert alice.get("/api/v1/tenants/does-not-exist").status_code == 404
    assert client.get("/api/v1/tenants").status_code == 401
    assert client.post("/api/v1/tenants", json={"subdomain": "abc"}).status_code == 401


def test_state_changes(alice):
    tenant_id = alice.create("flow").json["tenant"]["id"]
    stop = alice.post(f"/api/v1/tenants/{tenant_id}/stop")
    assert stop.status_code == 202 and stop.json["tenant"]["status"] == "stopping"
    assert alice.post(f"/api/v1/tenants/{tenant_id}/stop").status_code == 409
    assert alice.post(f"/api/v1/tenants/{tenant_id}/start").json["tenant"]["status"] == "starting"
    assert alice.post(f"/api/v1/tenants/{tenant_id}/start").json["error"]["code"] == "invalid_state"
    deleting = alice.delete(f"/api/v1/tenants/{tenant_id}")
    assert deleting.status_code == 202 and deleting.json["tenant"]["status"] == "deleting"
    assert alice.delete(f"/api/v1/tenants/{tenant_id}").status_code == 202, "deleting twice is idempotent"
    assert alice.post(f"/api/v1/tenants/{tenant_id}/start").status_code == 409


def test_free_tier_limit(workdir):
    app = make_app(workdir, free_max_instances=2)
    caller = Caller(app.test_client(), "dana@example.com")
    assert [caller.create(f"shop-{i}").status_code for i in range(2)] == [202, 202]
    r = caller.create("shop-3")
    assert r.status_code == 409 and r.json["error"]["code"] == "limit_reached"
    first = caller.get("/api/v1/tenants").json["items"][0]["id"]
    caller.delete(f"/api/v1/tenants/{first}")
    assert caller.create("shop-3").status_code == 202


def test_odoo_unavailable_without_fallback(workdir):
    app = make_app(workdir, local_fallback_app="")
    caller = Caller(app.test_client(), "erin@example.com")
    r = caller.create("needs-odoo")
    assert r.status_code == 409 and r.json["error"]["code"] == "odoo_unavailable"
    assert caller.create("sample-ok", app="sample").status_code == 202


def test_free_tier_limit_holds_under_concurrent_requests(workdir, store_url):
    """Review defect 3: 12 simultaneous creations against a limit of 5 give exactly 5."""
    app = make_app(workdir, database_url=store_url, free_max_instances=5)
    caller = Caller(app.test_client(), "burst@example.com")
    barrier, codes = threading.Barrier(12), []

    def create(i):
        barrier.wait()
        codes.append(caller.create(f"burst-{i}").status_code)
    threads = [threading.Thread(target=create, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [202] * 5 + [409] * 7
    assert len(caller.get("/api/v1/tenants").json["items"]) == 5
    app.extensions["odoosaas"].store.dispose()


def test_contract_for_long_ids_and_names(alice, client):
    """Review defect 16: a long id is an unknown id (404); a long name is unavailable (200)."""
    r = alice.get("/api/v1/tenants/" + "x" * 37)
    assert r.status_code == 404 and r.json["error"]["code"] == "not_found"
    assert alice.post("/api/v1/tenants/" + "y" * 300 + "/stop").status_code == 404
    r = client.get("/api/v1/subdomains/" + "a" * 101)
    assert r.status_code == 200 and r.json["available"] is False and "30" in r.json["reason"]


def test_module_routes_check_owner_app_and_names(alice, bob):
    tenant_id = alice.create("plain", app="sample").json["tenant"]["id"]
    assert bob.get(f"/api/v1/tenants/{tenant_id}/modules").status_code == 404
    assert bob.post(f"/api/v1/tenants/{tenant_id}/modules", json={"names": ["crm"]}).status_code == 404
    assert bob.get(f"/api/v1/tenants/{tenant_id}/operations").status_code == 404
    assert alice.get(f"/api/v1/tenants/{tenant_id}/modules").json == {"items": []}
    r = alice.post(f"/api/v1/tenants/{tenant_id}/modules", json={"names": ["crm"]})
    assert r.status_code == 400 and "modules" in r.json["error"]["fields"]
    assert alice.post(f"/api/v1/tenants/{tenant_id}/modules", json={"names": []}).status_code == 400
    assert alice.get(f"/api/v1/tenants/{tenant_id}/operations").json == {"items": []}
