"""Accounts through the HTTP API: one contract, run on the built-in provider and on Supabase Auth
(a real GoTrue, tests/supabase_env.py); then what is particular to each."""
import time
from datetime import timedelta

import jwt
import pytest
from sqlalchemy import update

from odoosaas.store.models import AuthSession, now
from tests.conftest import Caller, make_app
from tests.supabase_env import mailed_link


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


# The contract, on both providers.

def test_signup_login_me(accounts):
    client, address = accounts.client, accounts.email("ann")
    r = client.post("/api/v1/auth/signup", json={"email": address.upper(), "password": "12345678", "full_name": "Ann"})
    assert r.status_code == 201
    user = r.json["user"]
    assert user["email"] == address and user["full_name"] == "Ann" and user["is_admin"] is False
    assert set(user) >= {"id", "email", "full_name", "company", "is_admin", "created_at"}
    login = client.post("/api/v1/auth/login", json={"email": address, "password": "12345678"})
    assert login.status_code == 200
    body = login.json
    assert body["token_type"] == "bearer" and body["expires_in"] > 0 and body["user"]["id"] == user["id"]
    assert body["user"]["full_name"] == "Ann"
    me = client.get("/api/v1/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200 and me.json["user"]["email"] == address and me.json["user"]["id"] == user["id"]
    assert "password" not in str(me.json) and "hash" not in str(me.json)


def test_signup_twice_is_conflict(accounts):
    alice = accounts.caller("alice")
    r = accounts.client.post("/api/v1/auth/signup", json={"email": alice.email, "password": "another-pass"})
    assert r.status_code == 409 and r.json["error"]["code"] == "email_taken"


def test_wrong_password_and_unknown_user(accounts):
    alice = accounts.caller("alice")
    for address in (alice.email, accounts.email("nobody")):
        r = accounts.client.post("/api/v1/auth/login", json={"email": address, "password": "wrong-password"})
        assert r.status_code == 401 and r.json["error"]["code"] == "unauthenticated"
        assert r.json["error"]["message"] == "Wrong email or password."


def refresh(accounts, token: str):
    return accounts.client.post("/api/v1/auth/refresh", json={"refresh_token": token})


def test_refresh_twice_at_once_gives_the_same_token_and_reuse_later_revokes(accounts):
    first = accounts.caller("tabs").tokens["refresh_token"]
    tab_a, tab_b = refresh(accounts, first), refresh(accounts, first)
    assert tab_a.status_code == tab_b.status_code == 200
    # two tabs refreshing at once both get the one successor: neither is logged out later
    assert tab_a.json["refresh_token"] == tab_b.json["refresh_token"] != first
    assert tab_a.json["access_token"] != first and accounts.client.get(
        "/api/v1/me", headers=bearer(tab_b.json["access_token"])).status_code == 200
    newest = refresh(accounts, tab_b.json["refresh_token"])
    assert newest.status_code == 200
    time.sleep(accounts.reuse_interval + 0.2)
    # the first token, two rotations old, comes back: someone copied it; the whole family ends
    stolen = refresh(accounts, first)
    assert stolen.status_code == 401 and stolen.json["error"]["code"] == "unauthenticated"
    time.sleep(accounts.reuse_interval + 0.2)  # GoTrue honours a revoked token for its reuse interval
    assert refresh(accounts, newest.json["refresh_token"]).status_code == 401


def test_logout_ends_the_refresh_token(accounts):
    alice = accounts.caller("alice")
    assert alice.post("/api/v1/auth/logout").status_code == 204
    assert refresh(accounts, alice.tokens["refresh_token"]).status_code == 401
    # calls that change something ask the provider, also while the access token has not expired
    assert alice.patch("/api/v1/me", json={"full_name": "Ghost"}).status_code == 401
    assert alice.create("ghost-shop").status_code == 401


def forged_tokens(accounts, token: str) -> dict:
    key = accounts.jwt_key
    claims = jwt.decode(token, options={"verify_signature": False})
    without_sub = {name: value for name, value in claims.items() if name != "sub"}
    return {
        "tampered": token[:-3] + ("aaa" if not token.endswith("aaa") else "bbb"),
        "expired": jwt.encode({**claims, "exp": now() - timedelta(seconds=5)}, key, algorithm="HS256"),
        "another secret": jwt.encode(claims, "another-secret-another-secret-xx", algorithm="HS256"),
        "wrong audience": jwt.encode({**claims, "aud": "someone-else"}, key, algorithm="HS256"),
        "another issuer": jwt.encode({**claims, "iss": "https://evil.example"}, key, algorithm="HS256"),
        "no sub": jwt.encode(without_sub, key, algorithm="HS256"),
        "unsigned": jwt.encode(claims, None, algorithm="none"),
        "garbage": "garbage",
    }


def test_forged_tokens_are_refused(accounts):
    alice = accounts.caller("alice")
    for name, token in forged_tokens(accounts, alice.tokens["access_token"]).items():
        r = accounts.client.get("/api/v1/me", headers=bearer(token))
        assert r.status_code == 401 and r.json["error"]["code"] == "unauthenticated", name
    assert accounts.client.get("/api/v1/me").status_code == 401
    assert alice.get("/api/v1/me").status_code == 200


def test_password_reset_through_the_mailed_link(accounts):
    alice, ghost = accounts.caller("alice"), accounts.email("ghost")
    r = accounts.client.post("/api/v1/auth/password-reset", json={"email": ghost})
    assert r.status_code == 202 and r.json == {}, "an unknown email gets the same answer"
    token = accounts.reset_token(alice.email)
    confirm = {"token": token, "password": "brand-new-pass"}
    assert accounts.client.post("/api/v1/auth/password-reset/confirm", json=confirm).status_code == 204
    again = accounts.client.post("/api/v1/auth/password-reset/confirm", json={**confirm, "password": "third-pass"})
    assert again.status_code == 400 and again.json["error"]["fields"] == {"token": "invalid or expired"}
    login = {"email": alice.email, "password": alice.password}
    assert accounts.client.post("/api/v1/auth/login", json=login).status_code == 401
    assert accounts.client.post("/api/v1/auth/login", json={**login, "password": "brand-new-pass"}).status_code == 200
    assert refresh(accounts, alice.tokens["refresh_token"]).status_code == 401, "a reset ends the old sessions"
    assert not [rcpt for rcpt, _ in accounts.inbox.messages if ghost in rcpt], "no mail for an unknown account"


def test_a_made_up_reset_token_is_refused(accounts):
    r = accounts.client.post("/api/v1/auth/password-reset/confirm", json={"token": "made-up", "password": "12345678"})
    assert r.status_code == 400 and r.json["error"]["fields"] == {"token": "invalid or expired"}


def test_profile_read_and_update(accounts):
    alice = accounts.caller("alice")
    r = alice.patch("/api/v1/me", json={"full_name": "Alice A.", "company": "ACME"})
    assert r.status_code == 200 and r.json["user"]["company"] == "ACME" and r.json["user"]["full_name"] == "Alice A."
    assert alice.patch("/api/v1/me", json={"email": "x@example.com"}).status_code == 400
    assert alice.get("/api/v1/me").json["user"]["full_name"] == "Alice A."
    fresh = accounts.client.post("/api/v1/auth/login", json={"email": alice.email, "password": alice.password}).json
    assert fresh["user"]["full_name"] == "Alice A." and fresh["user"]["company"] == "ACME"


# The built-in provider.

@pytest.fixture
def builtin(workdir):
    app = make_app(workdir)
    yield app
    app.extensions["odoosaas"].store.dispose()


def test_builtin_refresh_after_the_grace_keeps_the_tab_that_got_the_shared_token(builtin):
    client = builtin.test_client()
    first = Caller(client, "tabs@example.com").tokens["refresh_token"]
    tab_a, tab_b = (client.post("/api/v1/auth/refresh", json={"refresh_token": first}).json for _ in range(2))
    with builtin.extensions["odoosaas"].store.session() as db:  # a minute later ...
        db.execute(update(AuthSession).values(rotated_at=now() - timedelta(minutes=1)))
    # ... tab A refreshes with what it got: its token is the family's current one, not a reuse
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": tab_a["refresh_token"]}).status_code == 200
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": first}).status_code == 401


def test_builtin_reset_token_expires(workdir, mail_sink):
    app = make_app(workdir, reset_token_ttl=1, smtp_host="127.0.0.1", smtp_port=mail_sink.port)
    Caller(app.test_client(), "carol-expiry@example.com")
    since = len(mail_sink.messages)
    app.extensions["odoosaas"].auth.request_reset("carol-expiry@example.com")
    link = mailed_link(mail_sink.wait_for("carol-expiry@example.com", since))
    time.sleep(1.2)
    token = link.rpartition("token=")[2]
    r = app.test_client().post("/api/v1/auth/password-reset/confirm", json={"token": token, "password": "brand-new-pass"})
    assert r.status_code == 400 and "token" in r.json["error"]["fields"]
    app.extensions["odoosaas"].store.dispose()


@pytest.mark.parametrize("body, field", [
    ({"email": "not-an-email", "password": "12345678"}, "email"),
    ({"email": "a@example.com", "password": "short"}, "password"),
    ({"password": "12345678"}, "email"),
    ({"email": "a@example.com", "password": "12345678", "is_admin": True}, "is_admin"),
])
def test_signup_validation(client, body, field):
    r = client.post("/api/v1/auth/signup", json=body)
    assert r.status_code == 400
    assert r.json["error"]["code"] == "invalid" and field in r.json["error"]["fields"]
    assert client.post("/api/v1/auth/login", json={"email": "a@example.com", "password": "12345678"}).status_code == 401


def test_body_rules(client, alice):
    r = client.post("/api/v1/auth/login", data="{not json", content_type="application/json")
    assert r.status_code == 400 and r.json["error"]["code"] == "invalid"
    r = client.post("/api/v1/auth/login", data="email=a", content_type="application/x-www-form-urlencoded")
    assert r.status_code == 415
    r = client.post("/api/v1/auth/signup", json={"email": "big@example.com", "password": "x" * 100_000})
    assert r.status_code == 413 and r.json["error"]["code"] == "too_large"
    r = client.post("/api/v1/auth/login", json=["a", "list"])
    assert r.status_code == 400
