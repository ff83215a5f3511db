"""Health, readiness, metrics, the OpenAPI document and the documented settings."""
import re
from pathlib import Path

from odoosaas.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
API_MD = ROOT.parent / "shared" / "API.md"


def test_health_and_readiness(client):
    assert client.get("/healthz").json == {"status": "ok"}
    assert client.get("/readyz").status_code == 200


def test_readiness_fails_without_store(app, client):
    from odoosaas.store import Store
    app.extensions["odoosaas"].store = Store("sqlite:////nonexistent/folder/store.db")
    r = client.get("/readyz")
    assert r.status_code == 503 and r.json["failing"] == {"store": "OperationalError"}


def test_metrics(client, alice):
    alice.create("measured")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'odoosaas_tenants{status="creating"} 1.0' in text
    assert "odoosaas_http_requests_total" in text and "odoosaas_http_request_seconds_bucket" in text


def documented_routes() -> set[tuple[str, str]]:
    routes = set()
    for method, path in re.findall(r"\| (GET|POST|PATCH|DELETE) (/\S+?)(?:\?\S*)? \|", API_MD.read_text()):
        routes.add((method.lower(), re.sub(r"\{(\w+)\}", "{}", path)))
    return routes


def test_openapi_describes_every_route(client):
    doc = client.get("/api/openapi.json").json
    assert doc["openapi"].startswith("3.")
    served = {(method, re.sub(r"\{(\w+)\}", "{}", path)) for path, item in doc["paths"].items() for method in item}
    later = {  # routes of capabilities whose issues are still open, and the document itself
        ("get", "/api/openapi.json"),
        *(("get", f"/api/v1/{p}") for p in ("tenants/{}/metrics", "admin/capacity")),  # monitoring
        ("patch", "/api/v1/tenants/{}"), ("get", "/api/v1/admin/migrations"),  # moves
        *((m, f"/api/v1/{p}") for m in ("get", "post") for p in ("tenants/{}/migration-requests",)),
        ("post", "/api/v1/admin/tenants/{}/migrate"),
        ("get", "/api/v1/tenants/{}/backups"), ("post", "/api/v1/tenants/{}/backups"),  # backups
        ("post", "/api/v1/tenants/{}/backups/{}/restore"),
        *((m, "/api/v1/tenants/{}/domains") for m in ("get", "post")), ("delete", "/api/v1/tenants/{}/domains/{}")}
    assert documented_routes(), "API.md was not found or not parsed"
    assert documented_routes() - later <= served


def test_openapi_declares_errors_as_the_envelope(client):
    """Each operation declares a success and its errors, all as API.md's envelope (tests/test_openapi.py
    has Schemathesis check that these are all the statuses the API answers)."""
    doc = client.get("/api/openapi.json").json
    assert doc["components"]["schemas"]["Error"]["properties"]["error"]["$ref"].endswith("/ErrorDetail")
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            statuses = {int(status): answer for status, answer in operation["responses"].items()}
            assert any(200 <= status < 300 for status in statuses), (method, path)
            assert 401 in statuses or not operation.get("security"), (method, path)
            for status, answer in statuses.items():
                if status >= 400 and path != "/readyz":
                    assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


def test_every_setting_is_documented():
    readme = (ROOT / "README.md").read_text()
    for name, field in Settings.model_fields.items():
        env = "PORT" if name == "port" else f"ODOOSAAS_{name.upper()}"
        assert f"`{env}`" in readme, f"{env} is not in the README's settings table"
        assert field.description, f"{name} has no help line"


def test_production_refuses_generated_secrets():
    import pydantic
    import pytest
    with pytest.raises(pydantic.ValidationError):
        Settings(env="production", secret_key="", database_url="postgresql://x/y")


def test_dashboard_and_api_refuse_framing(client):
    """Review defect 14: no clickjacking of the one-click stop/start forms."""
    for path in ("/", "/login", "/api/v1/plans", "/healthz"):
        r = client.get(path)
        assert r.headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]


def test_private_files_are_private(workdir):
    """Review defect 2: other local accounts (e.g. `postgres`) read no store, secret, mail or log."""
    import stat
    from tests.conftest import Caller, make_app
    from odoosaas.reconcile.worker import Worker
    app = make_app(workdir)
    caller = Caller(app.test_client(), "modes@example.com")
    assert app.test_client().post("/api/v1/auth/password-reset", json={"email": caller.email}).status_code == 202
    caller.create("modes")
    Worker(app.extensions["odoosaas"]).run_until_idle(60)
    assert list((workdir / "outbox").glob("*.eml")), "the worker mailed the reset link"
    assert stat.S_IMODE(workdir.stat().st_mode) == 0o711, "the postgres account may pass, not list"
    for path in workdir.rglob("*"):
        if path.is_symlink() or (workdir / "pg") in path.parents:
            continue  # clusters belong to the `postgres` account, in its own 0700 folders
        mode = stat.S_IMODE(path.stat().st_mode)
        if path == workdir / "pg":
            assert mode == 0o711
        else:
            assert mode & 0o077 == 0, f"{path} is {oct(mode)}"
    app.extensions["odoosaas"].driver.close()
