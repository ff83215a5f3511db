"""The dashboard in a real browser (Debian's Chromium through Playwright) against a real
server: waitress serving the app, the reconciler in a thread, real PostgreSQL, Traefik and
sample-app processes; the built-in identity provider, and for the journeys marked BOTH also
Supabase Auth (a real GoTrue). A failing test leaves screenshots of its pages in test-output/."""
import re
import shutil
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import waitress
from playwright.sync_api import expect, sync_playwright

from odoosaas.drivers.local import find_traefik
from odoosaas.pg.clusters import Cluster, free_port
from odoosaas.reconcile.worker import Worker
from tests.conftest import Caller, make_app, scratch_dir
from tests.supabase_env import mailed_link

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
OUTPUT = Path(__file__).resolve().parent.parent / "test-output"
BUSY = ("creating", "starting", "stopping", "deleting", "migrating")
SLOW = 120_000  # ms: a first tenant waits for initdb of the shared cluster
# Which identity providers a test runs on (a site per provider; Supabase only for the main journeys).
BOTH = pytest.mark.parametrize("site", ["builtin", "supabase"], indirect=True)
BUILTIN = pytest.mark.parametrize("site", ["builtin"], indirect=True)


@pytest.fixture(scope="module")
def site(request, mail_sink):
    """The platform as `odoosaas serve` runs it: web server, worker, Traefik; mail to the SMTP sink."""
    folder, port, edge = scratch_dir(), free_port(), free_port()
    provider = request.getfixturevalue("gotrue").settings if request.param == "supabase" else {}
    app = make_app(folder, traefik_port=edge, portal_url=f"http://127.0.0.1:{port}", smtp_host="127.0.0.1",
                   smtp_port=mail_sink.port, **provider)
    platform = app.extensions["odoosaas"]
    assert find_traefik(platform.settings), "no Traefik binary: run testbed/traefik/build.sh"
    assert platform.driver.start_edge()
    stop = threading.Event()
    worker = threading.Thread(target=Worker(platform).run, args=(stop,), daemon=True)
    worker.start()
    server = waitress.create_server(app, host="127.0.0.1", port=port, threads=8)
    threading.Thread(target=server.run, daemon=True).start()
    yield SimpleNamespace(url=f"http://127.0.0.1:{port}", app=app, platform=platform, edge=edge, inbox=mail_sink)
    stop.set()
    worker.join(30)
    server.task_dispatcher.shutdown()
    server.close()
    platform.driver.close()
    for cluster in (folder / "pg").glob("*"):
        Cluster(cluster).destroy()
    platform.store.dispose()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def browser():
    assert Path(CHROMIUM).exists(), "no Chromium: run `make system` (apt-get install chromium)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def browse(browser, request):
    """Opens pages, each with its own cookies; if the test fails, screenshots them into test-output/."""
    pages, failures = [], request.session.testsfailed

    def open_page(width: int = 1280, height: int = 900):
        page = browser.new_context(viewport={"width": width, "height": height}).new_page()
        page.set_default_timeout(15_000)
        pages.append(page)
        return page
    yield open_page
    for number, page in enumerate(pages):
        if request.session.testsfailed > failures:
            OUTPUT.mkdir(exist_ok=True)
            page.screenshot(path=OUTPUT / f"{request.node.name}-{number}.png", full_page=True)
        page.context.close()


def log_in(page, site, email: str, password: str = "correct-horse"):
    page.goto(site.url + "/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()


def sign_up_and_log_in(page, site, email: str, password: str = "correct-horse"):
    page.goto(site.url + "/")
    page.get_by_role("main").get_by_role("link", name="Sign up").click()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill("short")
    page.get_by_role("button", name="Create account").click()
    expect(page.locator("#password-msg")).to_have_text("String should have at least 8 characters")
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Create account").click()
    expect(page.locator(".notice")).to_contain_text("Your account is ready")
    expect(page.get_by_label("Email")).to_have_value(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="My instances")).to_be_visible()


def fill_instance_form(page, subdomain: str):
    with page.expect_navigation():  # until `load`: htmx, a deferred script, listens only from then on
        page.get_by_role("link", name="Create instance").click()
    page.get_by_label("Subdomain").fill("ab")
    expect(page.locator("#subdomain-msg")).to_have_text("ab must be 3 to 30 characters")
    page.get_by_label("Subdomain").fill(subdomain)
    expect(page.locator("#subdomain-msg")).to_have_text(f"{subdomain} is available")
    page.get_by_label("Admin password").fill("admin-pass-1")
    page.get_by_label("Tier").select_option("premium")
    expect(page.locator("#strategy")).to_contain_text("its own PostgreSQL server (rule tier:premium)")
    page.get_by_label("Tier").select_option("basic")
    page.get_by_label("HIPAA").check()
    expect(page.locator("#strategy")).to_contain_text("(rule compliance:hipaa)")
    page.get_by_label("HIPAA").uncheck()
    expect(page.locator("#strategy")).to_contain_text("a shared PostgreSQL server (rule tier:basic)")
    page.get_by_label("Tier").select_option("premium")  # its own cluster: initdb makes a slow first step
    expect(page.locator("#strategy")).to_contain_text("(rule tier:premium)")


def watch_progress(page, timeout: float = 120) -> list[tuple[str, int, tuple]]:
    """What the page showed, sampled every 50 ms, until the instance runs (or fails)."""
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = page.evaluate("""() => [document.querySelector('#live .badge').textContent,
            document.querySelector('#progress').value,
            [...document.querySelectorAll('ol.steps li')].map(li => li.className)]""")
        state = (state[0], state[1], tuple(state[2]))
        if not seen or seen[-1] != state:
            seen.append(state)
        if state[0] in ("running", "failed"):
            return seen
        time.sleep(0.05)
    return seen


@BOTH
def test_customer_creates_watches_uses_stops_starts_and_deletes_an_instance(site, browse):
    page = browse()
    sign_up_and_log_in(page, site, "carol@example.com")
    fill_instance_form(page, "carol")
    page.get_by_role("button", name="Create instance").click()
    expect(page.get_by_role("heading", name="carol")).to_be_visible()
    page.evaluate("window.notReloaded = true")
    seen = watch_progress(page)
    assert seen[-1] == ("running", 6, ("done",) * 6), seen
    assert any(status == "creating" and set(steps) != {"pending"} for status, _, steps in seen[:-1]), seen
    assert [done for _, done, _ in seen] == sorted(done for _, done, _ in seen), seen
    assert page.evaluate("window.notReloaded") is True  # htmx swapped the part in place
    expect(page.locator("ol.steps li")).to_have_text(
        [re.compile(f"^{name}\\s+done") for name in ("Billing", "Database", "Runtime", "Admin credentials", "Routing", "Ready")])
    expect(page.locator("#live dl")).to_contain_text(re.compile(r"dedicated on ded-carol-\w+ \(chosen by rule tier:premium\)"))

    link = page.locator("#open")
    expect(link).to_have_attribute("href", f"http://carol.localhost:{site.edge}")
    with page.context.expect_page() as opened:
        link.click()
    expect(opened.value.get_by_role("heading", name="carol")).to_be_visible()
    opened.value.close()

    page.get_by_role("button", name="Stop").click()
    expect(page.locator("#live .badge")).to_have_text("stopped", timeout=SLOW)
    page.get_by_role("button", name="Start").click()
    expect(page.locator("#live .badge")).to_have_text("running", timeout=SLOW)

    page.get_by_text("Delete this instance").click()
    page.get_by_label("Type carol to confirm").fill("carl")
    page.get_by_role("button", name="Delete").click()
    expect(page.locator("#confirm-msg")).to_have_text("Type carol to confirm.")
    page.get_by_label("Type carol to confirm").fill("carol")
    page.get_by_role("button", name="Delete").click()
    expect(page.locator(".notice")).to_have_text("carol is being deleted.")
    expect(page.get_by_text("No instances yet.")).to_be_visible(timeout=SLOW)

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(site.url + "/login")  # the start page, signed out
    page.goto(site.url + "/instances/")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()


@BOTH
def test_password_reset_through_the_mailed_link(site, browse):
    Caller(site.app.test_client(), "dave@example.com", "old-password")
    page = browse()
    page.goto(site.url + "/login")
    page.get_by_role("link", name="Forgot your password?").click()
    page.get_by_label("Email").fill("dave@example.com")
    since = len(site.inbox.messages)
    page.get_by_role("button", name="Send the link").click()
    expect(page.locator(".notice")).to_contain_text("a link to set a new password is on its way")

    link = mailed_link(site.inbox.wait_for("dave@example.com", since))  # Supabase: GoTrue's /verify, then the portal
    page.goto(link)
    expect(page).to_have_url(re.compile(r"/reset-password(\?token=[\w-]+)?$"))  # a session in the fragment is gone
    page.get_by_label("New password").fill("new-password")
    page.get_by_role("button", name="Save password").click()
    expect(page.locator(".notice")).to_contain_text("Your password is changed")

    log_in(page, site, "dave@example.com", "old-password")
    expect(page.locator("p.error")).to_have_text("Wrong email or password.")
    log_in(page, site, "dave@example.com", "new-password")
    expect(page.get_by_role("heading", name="My instances")).to_be_visible()

    page.goto(link)  # single use
    page.get_by_label("New password").fill("another-password")
    page.get_by_role("button", name="Save password").click()
    expect(page.locator("p.error")).to_have_text("This reset link is not valid or has expired.")


def settled(operator: Caller, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while any(t["status"] in BUSY for t in operator.get("/api/v1/admin/tenants").json["items"]):
        assert time.monotonic() < deadline, "tenants did not settle"
        time.sleep(0.2)


def chart(page, name: str) -> dict[str, int]:
    return page.eval_on_selector_all(f"[data-chart={name}] dd", """rows => Object.fromEntries(rows.map(
        row => [row.dataset.key, Number(row.querySelector('meter').getAttribute('value'))]))""")


def table_column(page) -> list[str]:
    return page.locator("tbody tr td:first-child").all_inner_texts()


@BUILTIN
def test_operator_filters_searches_and_sees_the_overview(site, browse):
    client = site.app.test_client()
    erin, frank = Caller(client, "erin@example.com"), Caller(client, "frank@example.com")
    assert erin.create("erin-shop").status_code == erin.create("erin-big", tier="premium").status_code == 202
    assert frank.create("frank-crm", tier="standard").status_code == 202
    site.platform.auth.ensure_operator("ops@example.com", "operator-pass")
    operator = Caller.__new__(Caller)
    operator.client, operator.headers = client, {"Authorization": "Bearer " + client.post(
        "/api/v1/auth/login", json={"email": "ops@example.com", "password": "operator-pass"}).json["access_token"]}
    settled(operator)

    page = browse()
    log_in(page, site, "ops@example.com", "operator-pass")
    page.get_by_role("link", name="Operator").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    api = operator.get("/api/v1/admin/overview").json
    assert chart(page, "status") == api["tenants_by_status"]
    assert chart(page, "strategy") == api["tenants_by_strategy"] and api["tenants_by_strategy"]["dedicated"] >= 1
    assert chart(page, "tier") == api["tenants_by_tier"]
    assert chart(page, "node") == {n["name"]: n["tenants"] for n in api["nodes"]}
    shared = [s for s in api["db_servers"] if s["kind"] == "shared"]
    assert chart(page, "servers") == {s["name"]: s["tenants"] for s in shared}
    assert page.get_attribute("[data-chart=servers] meter", "max") == str(shared[0]["capacity"])

    page.get_by_role("navigation", name="Operator").get_by_role("link", name="Tenants").click()
    page.get_by_label("Status").select_option("running")
    page.get_by_label("Database").select_option("dedicated")
    page.get_by_role("button", name="Filter").click()
    assert table_column(page) == ["erin-big"]
    page.get_by_label("Status").select_option("")
    page.get_by_label("Database").select_option("")
    page.get_by_label("Subdomain or owner email").fill("FRANK@")
    page.get_by_role("button", name="Filter").click()
    assert table_column(page) == ["frank-crm"]
    page.get_by_label("Subdomain or owner email").fill("erin-")
    page.get_by_role("button", name="Filter").click()
    assert sorted(table_column(page)) == ["erin-big", "erin-shop"]

    page.get_by_role("link", name="erin-big").click()
    expect(page.get_by_text("erin@example.com")).to_be_visible()
    expect(page.locator("ol.events")).to_contain_text(re.compile(r"premium \w+ instance requested"))
    expect(page.locator("ol.events")).to_contain_text("instance running")
    page.get_by_role("link", name="Database servers").click()
    expect(page.locator("tbody")).to_contain_text("shared-1")
    expect(page.locator("tbody")).to_contain_text("ded-erin-big-")


@BUILTIN
def test_nobody_reaches_another_users_instance(site, browse):
    client = site.app.test_client()
    gina = Caller(client, "gina@example.com")
    tenant_id = gina.create("gina").json["tenant"]["id"]
    Caller(client, "hank@example.com")
    page = browse(390, 844)  # a phone
    log_in(page, site, "hank@example.com")
    expect(page.get_by_role("heading", name="My instances")).to_be_visible()
    response = page.goto(f"{site.url}/instances/{tenant_id}")
    assert response.status == 404
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    expect(page.get_by_text("No such instance.")).to_be_visible()
    page.goto(f"{site.url}/admin/tenants/{tenant_id}")
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()


# Without a browser: the guards around every page.

def csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def form_login(client, email: str, password: str = "correct-horse"):
    return client.post("/login", data={"csrf_token": csrf(client.get("/login").text), "email": email,
                                       "password": password})


def test_forms_without_the_sessions_csrf_token_are_refused(client, alice):
    assert form_login(client, alice.email).status_code == 302
    token = csrf(client.get("/profile").text)
    for data in ({"full_name": "Mallory"}, {"full_name": "Mallory", "csrf_token": "forged"}):
        refused = client.post("/profile", data=data)
        assert refused.status_code == 403 and "<h1>Not allowed</h1>" in refused.text
    assert client.post("/profile", data={"full_name": "Alice", "csrf_token": token}).status_code == 302
    assert client.get("/api/v1/me", headers=alice.headers).json["user"]["full_name"] == "Alice"


def test_pages_get_html_errors_and_the_api_keeps_json(client):
    page = client.get("/no-such-page")
    assert page.status_code == 404 and page.mimetype == "text/html" and "<h1>Not found</h1>" in page.text
    for path in ("/api/no-such-thing", "/api/v1/tenants"):
        assert client.get(path).json["error"]["code"] in ("not_found", "unauthenticated")
    assert client.get("/instances/").headers["Location"] == "/login?next=/instances/?"


def test_a_crash_is_logged_and_answered_without_its_details(workdir, caplog):
    app = make_app(workdir)

    def crash():
        raise RuntimeError("secret detail")
    app.add_url_rule("/crash", "crash", crash)
    app.add_url_rule("/api/crash", "api_crash", crash)
    page, answer = app.test_client().get("/crash"), app.test_client().get("/api/crash")
    assert page.status_code == 500 and "<h1>Something went wrong</h1>" in page.text and "secret" not in page.text
    assert answer.status_code == 500 and answer.json["error"]["code"] == "internal" and "secret" not in answer.text
    assert "secret detail" in caplog.text


def test_session_cookie_is_httponly_lax_and_secure_over_https(workdir, client, alice):
    cookie = form_login(client, alice.email).headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    app = make_app(workdir, public_scheme="https")
    assert app.config["SESSION_COOKIE_SECURE"] is True


def test_an_expired_access_token_is_refreshed_once_then_log_in_again(client, alice):
    form_login(client, alice.email)
    with client.session_transaction() as session:
        session["access"] = "expired"
    assert client.get("/instances/").status_code == 200
    with client.session_transaction() as session:
        assert session["access"] != "expired"
        session["access"], session["refresh"] = "expired", "revoked"
    polled = client.get("/instances/", headers={"HX-Request": "true"})
    assert polled.status_code == 204 and polled.headers["HX-Redirect"].startswith("/login?next=")
    assert client.get("/instances/").headers["Location"].startswith("/login?next=")


def test_login_form_shares_the_apis_rate_limit(workdir):
    client = make_app(workdir, rate_limit="2 per minute").test_client()
    token = csrf(client.get("/login").text)
    statuses = [client.post("/login", data={"csrf_token": token, "email": "x@example.com", "password": "wrong"})
                for _ in range(3)]
    assert [r.status_code for r in statuses] == [400, 400, 429]
    assert "<h1>Too many attempts</h1>" in statuses[-1].text
    assert client.post("/api/v1/auth/login", json={"email": "x@example.com", "password": "x"}).status_code == 429


def test_operator_pages_are_for_operators(client, alice):
    form_login(client, alice.email)
    refused = client.get("/admin/")
    assert refused.status_code == 403 and "<h1>Not allowed</h1>" in refused.text


def test_log_in_returns_to_pages_of_this_site_only(client, alice):
    for target, landing in (("/profile", "/profile"), ("//evil.example/", "/"), ("/\t/evil.example/", "/"),
                            ("https://evil.example/", "/")):
        token = csrf(client.get("/login").text)
        done = client.post("/login", query_string={"next": target},
                           data={"csrf_token": token, "email": alice.email, "password": alice.password})
        assert done.headers["Location"] == landing
