"""Supabase Auth for the tests: GoTrue built from the vendored source by testbed/supabase/build.sh, on
a database of the session's PostgreSQL server prepared as a Supabase project's is, mailing into an
SMTP sink; and `accounts`, the platform on either identity provider, for the contract tests."""
import email
import email.policy
import html
import os
import re
import secrets
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import psycopg
import pytest
from aiosmtpd.controller import Controller
from psycopg import sql

from odoosaas.pg.clusters import free_port
from odoosaas.reconcile.worker import Worker
from tests.conftest import Caller, make_app, scratch_dir

BUILD = Path(__file__).resolve().parents[1] / "testbed" / "supabase" / "build.sh"
PORTAL = "http://portal.test"  # make_app's portal URL
REUSE_INTERVAL = 1  # seconds GoTrue returns the same token for a refreshed one (10 in production)


class Inbox:
    """An SMTP sink's messages, parsed; tests wait for the one to their (unique) address."""

    def __init__(self):
        self.messages, self.port = [], free_port()

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, email.message_from_bytes(envelope.content, policy=email.policy.default)))
        return "250 OK"

    def wait_for(self, address: str, since: int = 0, timeout: float = 10) -> email.message.EmailMessage:
        """The first mail to this address after the `since` first messages (a reset may be mailed by
        the worker, a moment after the request)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            mails = [message for rcpt, message in self.messages[since:] if address in rcpt]
            if mails:
                return mails[0]
            time.sleep(0.05)
        raise AssertionError(f"no mail to {address} within {timeout} s")


def mailed_link(message) -> str:
    body = message.get_body(("plain", "html")).get_content()
    return next(html.unescape(link) for link in re.findall(r"https?://[^\s\"'<>]+", body)
                if "reset-password" in link or "/verify?" in link)


@pytest.fixture(scope="session")
def mail_sink():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port)
    controller.start()
    yield inbox
    controller.stop()


def build_gotrue() -> str:
    done = subprocess.run([str(BUILD)], capture_output=True, text=True)
    if done.returncode:
        pytest.fail(f"testbed/supabase/build.sh failed: {done.stderr.strip()[-2000:]}")
    return done.stdout.split()[-1]


def prepare_database(admin: dict, password: str) -> None:
    """What a Supabase project's database has for GoTrue (its hack/init_postgres.sql)."""
    with psycopg.connect(**admin, dbname="postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'postgres'").fetchone():
            conn.execute("CREATE ROLE postgres")  # a migration grants it SELECT
        conn.execute(sql.SQL("CREATE USER supabase_auth_admin NOINHERIT CREATEROLE LOGIN NOREPLICATION "
                             "PASSWORD {}").format(sql.Literal(password)))
        conn.execute("CREATE DATABASE supabase")
    with psycopg.connect(**admin, dbname="supabase", autocommit=True) as conn:
        conn.execute("CREATE SCHEMA auth AUTHORIZATION supabase_auth_admin")
        conn.execute("GRANT CREATE ON DATABASE supabase TO supabase_auth_admin")
        conn.execute("ALTER USER supabase_auth_admin SET search_path = 'auth'")


def gotrue_env(admin: dict, password: str, port: int, smtp_port: int, **extra) -> dict:
    url = f"http://127.0.0.1:{port}"
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GOTRUE_DB_DRIVER": "postgres",
        "DATABASE_URL": f"postgres://supabase_auth_admin:{password}@127.0.0.1:{admin['port']}/supabase?sslmode=disable",
        "GOTRUE_API_HOST": "127.0.0.1", "PORT": str(port), "API_EXTERNAL_URL": url,
        "GOTRUE_SITE_URL": PORTAL, "GOTRUE_URI_ALLOW_LIST": f"{PORTAL}/**",  # loopback portals are always allowed
        "GOTRUE_JWT_ISSUER": url, "GOTRUE_JWT_AUD": "authenticated", "GOTRUE_JWT_DEFAULT_GROUP_NAME": "authenticated",
        "GOTRUE_JWT_ADMIN_ROLES": "service_role", "GOTRUE_JWT_EXP": "3600",
        "GOTRUE_MAILER_AUTOCONFIRM": "true", "GOTRUE_SMTP_HOST": "127.0.0.1", "GOTRUE_SMTP_PORT": str(smtp_port),
        "GOTRUE_SMTP_ADMIN_EMAIL": "auth@example.com", "GOTRUE_SMTP_SENDER_NAME": "Odoo SaaS",
        "GOTRUE_SMTP_MAX_FREQUENCY": "1s", "GOTRUE_SECURITY_REFRESH_TOKEN_REUSE_INTERVAL": str(REUSE_INTERVAL),
        **{f"GOTRUE_RATE_LIMIT_{name}": "10000" for name in ("EMAIL_SENT", "VERIFY", "TOKEN_REFRESH", "OTP")},
        "GOTRUE_LOG_LEVEL": "warn", **extra,
    }


def start_gotrue(binary: str, env: dict, folder: Path) -> subprocess.Popen:
    """Migrate, then serve (`serve` alone does not migrate); secrets only in the environment."""
    subprocess.run([binary, "migrate"], env=env, cwd=folder, check=True, capture_output=True, timeout=60)
    log = open(folder / f"gotrue-{env['PORT']}.log", "ab")
    process = subprocess.Popen([binary, "serve"], env=env, cwd=folder, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{env['API_EXTERNAL_URL']}/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        assert process.poll() is None, (folder / f"gotrue-{env['PORT']}.log").read_text()[-2000:]
        time.sleep(0.05)
    process.kill()
    raise AssertionError("GoTrue did not answer /health")


def api_key(secret, role: str, algorithm: str = "HS256", kid: str | None = None) -> str:
    """A project key as Supabase makes them: a long-lived JWT with the Postgres role."""
    claims = {"role": role, "iss": "supabase", "iat": int(time.time()), "exp": int(time.time()) + 86400}
    return jwt.encode(claims, secret, algorithm=algorithm, headers={"kid": kid} if kid else None)


@pytest.fixture(scope="session")
def gotrue(pg_admin, mail_sink):
    """A Supabase Auth server for the session, and the platform settings that point at it."""
    binary, folder = build_gotrue(), scratch_dir()
    password, secret, port = secrets.token_urlsafe(16), secrets.token_urlsafe(32), free_port()
    prepare_database(pg_admin, password)
    env = gotrue_env(pg_admin, password, port, mail_sink.port, GOTRUE_JWT_SECRET=secret)
    process = start_gotrue(binary, env, folder)
    url, service_key = env["API_EXTERNAL_URL"], api_key(secret, "service_role")
    admin = httpx.Client(base_url=url, headers={"apikey": service_key, "Authorization": f"Bearer {service_key}"})
    yield SimpleNamespace(
        url=url, secret=secret, admin=admin, binary=binary, folder=folder, env=env,
        database=(f"postgresql+psycopg://{pg_admin['user']}:{pg_admin['password']}@{pg_admin['host']}:"
                  f"{pg_admin['port']}/supabase"),
        settings={"auth": "supabase", "supabase_url": url, "supabase_anon_key": api_key(secret, "anon"),
                  "supabase_service_key": service_key, "supabase_jwt_secret": secret})
    admin.close()
    process.terminate()
    process.wait(10)
    shutil.rmtree(folder, ignore_errors=True)


def running_worker(platform):
    """The reconciler in a thread, as `odoosaas serve` runs it (it mails password resets)."""
    stop = threading.Event()
    thread = threading.Thread(target=Worker(platform).run, args=(stop,), daemon=True)
    thread.start()
    return lambda: (stop.set(), thread.join(30))


class Accounts:
    """The platform's account API on one identity provider, and what a user's mailbox receives."""

    def __init__(self, provider: str, app, inbox: Inbox, gotrue=None):
        self.provider, self.app, self.inbox, self.gotrue = provider, app, inbox, gotrue
        self.client = app.test_client()
        self.platform = app.extensions["odoosaas"]
        self.jwt_key = gotrue.secret if gotrue else self.platform.auth.jwt_key
        self.reuse_interval = REUSE_INTERVAL if gotrue else 0  # builtin: an older token is reuse at once

    @staticmethod
    def email(name: str) -> str:
        return f"{name}-{uuid.uuid4().hex[:8]}@example.com"

    def caller(self, name: str, password: str = "correct-horse") -> Caller:
        return Caller(self.client, self.email(name), password)

    def reset_link(self, address: str) -> str:
        """Ask for a reset through the API, and the link of the mail that arrives."""
        since = len(self.inbox.messages)
        assert self.client.post("/api/v1/auth/password-reset", json={"email": address}).status_code == 202
        return mailed_link(self.inbox.wait_for(address, since))

    def reset_token(self, address: str) -> str:
        """What the portal's reset page submits: the link's token (builtin) or, once GoTrue's /verify
        redirected to the portal, the recovery access token of the fragment (Supabase)."""
        return token_behind(self.reset_link(address))


def token_behind(link: str) -> str:
    if "/verify?" not in link:
        return parse_qs(urlsplit(link).query)["token"][0]
    landed = httpx.get(link, follow_redirects=False)
    assert landed.status_code == 303, landed.text
    return parse_qs(urlsplit(landed.headers["location"]).fragment)["access_token"][0]


@pytest.fixture(params=["builtin", "supabase"])
def accounts(request, workdir, mail_sink):
    """The same contract, on each identity provider; both mail through the SMTP sink."""
    gotrue = request.getfixturevalue("gotrue") if request.param == "supabase" else None
    app = make_app(workdir, smtp_host="127.0.0.1", smtp_port=mail_sink.port, **(gotrue.settings if gotrue else {}))
    stop = running_worker(app.extensions["odoosaas"])
    yield Accounts(request.param, app, mail_sink, gotrue)
    stop()
    app.extensions["odoosaas"].driver.close()
    app.extensions["odoosaas"].store.dispose()
