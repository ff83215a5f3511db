"""The OpenAPI document is the truth: Schemathesis (4.x, `--checks all`) against the app served by waitress,
as a customer and as an operator; and the schema's subdomain rule equals the server's."""
import os
import re
import shutil
import string
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import jsonschema_rs
import pytest
import waitress
from hypothesis import given, settings, strategies as st

from odoosaas.pg.clusters import free_port
from odoosaas.tenants import rules
from tests.conftest import Caller, make_app, scratch_dir

ROOT = str(Path(__file__).resolve().parents[1])
CUSTOMER = ("carol@example.com", "customer-pass-1")
OPERATOR = ("ops@example.com", "operator-pass-1")
# Routes that answer everyone alike: the operator's run leaves them to the customer's (logins cost argon2 time).
PUBLIC = r"^/(healthz|readyz|metrics|api/v1/subdomains/.*|api/v1/auth/(signup|login|refresh|password-reset.*))$"
LOGOUT = "/api/v1/auth/logout"  # ends the session: its own run, on a session of its own
# Decided by what the platform has, not by the request's shape, so no schema can say it: a reset token is
# valid only if the platform issued it (400 `token`); module names must be among the Odoo apps this
# installation has (GET /api/v1/apps/odoo/modules; here none: the sample app stands in for Odoo); a custom
# domain must not lie under this platform's base domain (a setting). These may
# answer a schema-valid request 400, if the error names only such fields (tests/schemathesis_hooks.py).
BUSINESS_400 = ("/api/v1/auth/password-reset/confirm", "/api/v1/tenants", "/api/v1/tenants/{tenant_id}/modules",
                "/api/v1/tenants/{tenant_id}/domains")


@pytest.fixture(scope="module")
def site():
    folder, port = scratch_dir(), free_port()
    app = make_app(folder)
    platform = app.extensions["odoosaas"]
    owner = Caller(app.test_client(), *CUSTOMER)
    tenant = owner.create("documented").json["tenant"]["id"]  # recorded only: no worker runs here
    platform.auth.ensure_operator(*OPERATOR)
    server = waitress.create_server(app, host="127.0.0.1", port=port, threads=4)
    threading.Thread(target=server.run, daemon=True).start()
    yield SimpleNamespace(url=f"http://127.0.0.1:{port}", app=app, tenant=tenant, owner=owner)
    server.close()
    platform.driver.close()
    platform.store.dispose()
    shutil.rmtree(folder, ignore_errors=True)


def config(site, who: tuple[str, str] | None) -> str:
    """schemathesis.toml: log in as `who` (again after a 401), or else send a token of a session of its own;
    a real tenant's id half the time; our check (tests/schemathesis_hooks.py)."""
    if who:
        auth = ['[auth.dynamic.openapi.bearer]', 'path = "/api/v1/auth/login"', 'extract_selector = "/access_token"',
                f'payload = {{ email = "{who[0]}", password = "{who[1]}" }}']
    else:
        session = site.owner.post("/api/v1/auth/login", json={"email": CUSTOMER[0], "password": CUSTOMER[1]}).json
        auth = [f'headers = {{ Authorization = "Bearer {session["access_token"]}" }}']
    lines = ['hooks = "tests.schemathesis_hooks"', *auth, '[dictionaries.tenants]', f'values = ["{site.tenant}"]',
             '[parameters]', '"path.tenant_id" = { dictionary = "tenants", probability = 0.5 }']
    for path in BUSINESS_400:
        lines += ['[[operations]]', f'include-path = "{path}"', 'include-method = "POST"',
                  '[operations.checks.positive_data_acceptance]',
                  'expected-statuses = ["2xx", "400", "401", "403", "404", "409", "429"]']
    return "\n".join(lines) + "\n"


RUNS = {"customer": (CUSTOMER, ["--exclude-path", LOGOUT]),
        "operator": (OPERATOR, ["--exclude-path", LOGOUT, "--exclude-path-regex", PUBLIC]),
        "logout": (None, ["--include-path", LOGOUT])}


@pytest.mark.parametrize("run_name", RUNS)
def test_schemathesis_finds_nothing(site, run_name, tmp_path):
    who, selection = RUNS[run_name]
    (tmp_path / "schemathesis.toml").write_text(config(site, who))
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "schemathesis.cli", "--no-color", "--config-file", "schemathesis.toml",
                          "run", f"{site.url}/api/openapi.json", "--checks", "all", "--max-examples", "10",
                          "--seed", "17", "--workers", "1", "--generation-database", "none", *selection],
                         cwd=tmp_path, env={**os.environ, "PYTHONPATH": ROOT}, capture_output=True, text=True,
                         timeout=600)
    print(f"schemathesis ({run_name}): {time.monotonic() - started:.1f} s\n{run.stdout[-1500:]}")
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-2000:]
    shut_out = run.stdout.partition("Authentication failed")[2].partition("💡")[0]  # the routes only 401 or 403
    refused = re.findall(r"^  - \w+ (\S+)$", shut_out, re.M)
    assert all(path.startswith("/api/v1/admin/") and who == CUSTOMER for path in refused), refused


def subdomain_schema(app) -> dict:
    doc = app.test_client().get("/api/openapi.json").json
    return doc["components"]["schemas"]["TenantRequest"]["properties"]["subdomain"]


@pytest.fixture(scope="module")
def subdomain_validator(site):
    return jsonschema_rs.Draft202012Validator(subdomain_schema(site.app))


NAMES = st.one_of(st.text(alphabet="abz09-", max_size=32), st.text(alphabet=string.printable, max_size=32),
                  st.sampled_from(sorted(rules.RESERVED)))


@settings(max_examples=3000, deadline=None, database=None)
@given(name=NAMES)
def test_subdomain_schema_is_the_servers_rule(subdomain_validator, name):
    assert subdomain_validator.is_valid(name) == (rules.subdomain_problem(name) is None), name


@pytest.mark.parametrize("name, valid", [("", False), ("ab", False), ("abc", True), ("a" * 30, True), ("a" * 31, False),
                                         ("a-b-c", True), ("a--b", False), ("-ab", False), ("ab-", False),
                                         ("1ab", False), ("shop-2", True), ("www", False), ("kube-system", False)])
def test_subdomain_schema_examples(subdomain_validator, name, valid):
    assert subdomain_validator.is_valid(name) is valid
    assert (rules.subdomain_problem(name) is None) is valid


def test_405_names_the_allowed_methods(client):
    for path in ("/healthz", "/api/v1/subdomains/shop", "/login"):
        answer = client.open(path, method="TRACE")
        assert answer.status_code == 405 and "GET" in answer.headers["Allow"].split(", "), path
