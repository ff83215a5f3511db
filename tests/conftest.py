"""Shared fixtures: a real PostgreSQL cluster for the session, stores on SQLite and PostgreSQL,
and the app on the local driver with folders the `postgres` account can reach."""
import os
import secrets
import shutil
import tempfile
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from odoosaas import create_app
from odoosaas.limits import limiter
from odoosaas.pg.clusters import Cluster, free_port

pytest_plugins = ["tests.supabase_env",  # GoTrue, the SMTP sink, `accounts` on either identity provider
                  "tests.domains_env",  # `dns_server` (CoreDNS) and `acme_server` (Pebble), custom domains
                  "tests.s3_env",  # `s3_server`: MinIO with a bucket, for the backups
                  "tests.killbill_env"]  # `killbill`: one Kill Bill server per session, test clock on

# pytest's tmp_path lives under a 0700 folder that PostgreSQL (run as `postgres`) cannot enter.
SCRATCH = Path(os.environ.get("ODOOSAAS_TEST_SCRATCH", tempfile.gettempdir())) / "odoosaas-tests"


def scratch_dir() -> Path:
    SCRATCH.mkdir(mode=0o755, exist_ok=True)
    os.chmod(SCRATCH, 0o755)
    folder = Path(tempfile.mkdtemp(dir=SCRATCH))
    os.chmod(folder, 0o755)
    return folder


@pytest.fixture(scope="session")
def pg_admin():
    """A real PostgreSQL server for the whole test session."""
    folder = scratch_dir()
    admin = {"host": "127.0.0.1", "port": free_port(), "user": "odoosaas", "password": secrets.token_urlsafe(16)}
    cluster = Cluster(folder / "store-pg")
    cluster.ensure(admin["port"], admin["user"], admin["password"])
    yield admin
    cluster.destroy()
    shutil.rmtree(folder, ignore_errors=True)


def fresh_database(admin: dict) -> str:
    name = f"store_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(**admin, dbname="postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return (f"postgresql+psycopg://{admin['user']}:{admin['password']}@{admin['host']}:{admin['port']}/{name}")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, workdir):
    if request.param == "sqlite":
        return f"sqlite:///{workdir / 'store.db'}"
    return fresh_database(request.getfixturevalue("pg_admin"))


def stop_clusters(folder: Path) -> None:
    """Clusters the platform made under a data dir keep running after its app is gone."""
    for cluster in (folder / "pg").glob("*") if (folder / "pg").exists() else []:
        Cluster(cluster).stop()


@pytest.fixture
def workdir():
    folder = scratch_dir()
    yield folder
    stop_clusters(folder)
    shutil.rmtree(folder, ignore_errors=True)


def make_app(workdir: Path, **overrides):
    # No Odoo unless a test asks (tests/test_odoo.py): the fast tests run the sample app, by the fallback setting.
    settings = {"data_dir": workdir, "rate_limit": "1000 per minute", "local_fallback_app": "sample",
                "odoo_bin": str(workdir / "no-odoo" / "odoo-bin"), "traefik_port": 0, "traefik_tls_port": 0,
                "portal_url": "http://portal.test",
                **overrides}
    app = create_app(settings)
    app.extensions["odoosaas"].store.upgrade()
    limiter.reset()
    return app


@pytest.fixture
def app(workdir):
    app = make_app(workdir)
    yield app
    app.extensions["odoosaas"].driver.close()
    app.extensions["odoosaas"].store.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


class Caller:
    """A signed-up, logged-in user of the API."""

    def __init__(self, client, email: str, password: str = "correct-horse"):
        self.client, self.email, self.password = client, email, password
        assert client.post("/api/v1/auth/signup", json={"email": email, "password": password}).status_code == 201
        self.tokens = client.post("/api/v1/auth/login", json={"email": email, "password": password}).json
        self.headers = {"Authorization": f"Bearer {self.tokens['access_token']}"}

    def __getattr__(self, verb):
        def call(path, **kwargs):
            return getattr(self.client, verb)(path, headers={**self.headers, **kwargs.pop("headers", {})}, **kwargs)
        return call

    def create(self, subdomain: str, **fields):
        body = {"subdomain": subdomain, "admin_email": "owner@example.com", "admin_password": "admin-pass-1", **fields}
        return self.post("/api/v1/tenants", json=body)


@pytest.fixture
def alice(client):
    return Caller(client, "alice@example.com")


@pytest.fixture
def bob(client):
    return Caller(client, "bob@example.com")


@pytest.fixture
def operator(app, client):
    app.extensions["odoosaas"].auth.ensure_operator("ops@example.com", "operator-pass")
    caller = Caller.__new__(Caller)
    caller.client, caller.email = client, "ops@example.com"
    caller.tokens = client.post("/api/v1/auth/login", json={"email": "ops@example.com", "password": "operator-pass"}).json
    caller.headers = {"Authorization": f"Bearer {caller.tokens['access_token']}"}
    return caller
