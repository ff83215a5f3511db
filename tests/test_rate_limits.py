"""Rate limits on the account routes: each route its own bucket, per client and (login, reset) per
account; the client is the peer unless a trusted proxy says otherwise (defect: one client behind
Traefik could lock every user out of login)."""
import pytest
from limits.errors import ConfigurationError

from tests.conftest import Caller, make_app


@pytest.fixture
def limited(workdir):
    def build(**settings):
        app = make_app(workdir, rate_limit="3 per minute", **settings)
        apps.append(app)
        return app.test_client()
    apps = []
    yield build
    for app in apps:
        app.extensions["odoosaas"].store.dispose()


def login(client, email: str, password: str = "wrong-password", client_address: str | None = None) -> int:
    headers = {"X-Forwarded-For": client_address} if client_address else {}
    return client.post("/api/v1/auth/login", json={"email": email, "password": password}, headers=headers).status_code


def test_resets_do_not_block_logins(limited):
    client = limited()
    Caller(client, "alice@example.com")  # signup and login: their own buckets
    codes = [client.post("/api/v1/auth/password-reset", json={"email": "alice@example.com"}).status_code
             for _ in range(4)]
    assert codes == [202, 202, 202, 429]
    assert login(client, "alice@example.com", "correct-horse") == 200
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": "x.y"}).status_code == 401


def test_behind_a_trusted_proxy_each_client_has_its_own_limit(limited):
    client = limited(trusted_proxies=1)
    Caller(client, "bob@example.com")
    noisy = [login(client, "alice@example.com", client_address="203.0.113.7") for _ in range(4)]
    assert noisy == [401, 401, 401, 429]
    assert login(client, "bob@example.com", "correct-horse", client_address="198.51.100.2") == 200


def test_forwarded_addresses_are_ignored_without_a_trusted_proxy(limited):
    client = limited()
    spoofed = [login(client, f"user{n}@example.com", client_address=f"203.0.113.{n}") for n in range(4)]
    assert spoofed == [401, 401, 401, 429]


def test_guessing_one_accounts_password_from_many_addresses_is_limited_per_account(limited):
    client = limited(trusted_proxies=1)
    Caller(client, "bob@example.com")
    guesses = [login(client, "Alice@Example.com ", client_address=f"203.0.113.{n}") for n in range(4)]
    assert guesses == [401, 401, 401, 429]
    assert login(client, "alice@example.com", client_address="203.0.113.99") == 429, "the account, not the address"
    assert login(client, "bob@example.com", "correct-horse", client_address="203.0.113.99") == 200


def test_the_limit_storage_is_the_setting(workdir):
    with pytest.raises(ConfigurationError):
        make_app(workdir, rate_limit_storage="no-such-store://")
