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
    later = {("post", "/api/v1/tenants/{}/migration-requests"), ("get", "/api/v1/tenants/{}/metrics"),
             ("post", "/api/v1/admin/tenants/{}/migrate"), ("get", "/api/openapi.json")}
    assert documented_routes(), "API.md was not found or not parsed"
    assert documented_routes() - later <= served


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
