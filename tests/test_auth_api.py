"""Accounts through the HTTP API with the built-in identity provider."""
import email
import email.policy
import re
import time
from datetime import timedelta

import jwt
import pytest

from odoosaas.store.models import now
from tests.conftest import Caller, make_app


def outbox_link(app) -> str:
    mails = sorted((app.extensions["odoosaas"].settings.data_dir / "outbox").glob("*.eml"))
    body = email.message_from_bytes(mails[-1].read_bytes(), policy=email.policy.default).get_content()
    return re.search(r"reset-password\?token=(\S+)", body).group(1)


def test_signup_login_me(client):
    r = client.post("/api/v1/auth/signup", json={"email": "Ann@Example.com", "password": "12345678", "full_name": "Ann"})
    assert r.status_code == 201
    user = r.json["user"]
    assert user["email"] == "ann@example.com" and user["full_name"] == "Ann" and user["is_admin"] is False
    assert set(user) >= {"id", "email", "full_name", "company", "is_admin", "created_at"}
    login = client.post("/api/v1/auth/login", json={"email": "ann@example.com", "password": "12345678"})
    assert login.status_code == 200
    body = login.json
    assert body["token_type"] == "bearer" and body["expires_in"] > 0 and body["user"]["id"] == user["id"]
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200 and me.json["user"]["email"] == "ann@example.com"
    assert "password" not in str(me.json) and "hash" not in str(me.json)


def test_signup_twice_is_conflict(client, alice):
    r = client.post("/api/v1/auth/signup", json={"email": "alice@example.com", "password": "another-pass"})
    assert r.status_code == 409 and r.json["error"]["code"] == "email_taken"


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


def test_wrong_password_and_unknown_user(client, alice):
    for email in ("alice@example.com", "nobody@example.com"):
        r = client.post("/api/v1/auth/login", json={"email": email, "password": "wrong-password"})
        assert r.status_code == 401 and r.json["error"]["code"] == "unauthenticated"


def test_refresh_rotates_and_reuse_revokes_family(app, client, alice):
    first = alice.tokens["refresh_token"]
    rotated = client.post("/api/v1/auth/refresh", json={"refresh_token": first})
    assert rotated.status_code == 200 and rotated.json["refresh_token"] != first
    # a second tab refreshing with the same token at the same moment is not a theft
    twin = client.post("/api/v1/auth/refresh", json={"refresh_token": first})
    assert twin.status_code == 200 and twin.json["refresh_token"] == rotated.json["refresh_token"], "one successor"
    from sqlalchemy import update
    from odoosaas.store.models import AuthSession
    with app.extensions["odoosaas"].store.session() as db:  # ... but a minute later it is
        db.execute(update(AuthSession).values(rotated_at=now() - timedelta(minutes=1)))
    again = client.post("/api/v1/auth/refresh", json={"refresh_token": first})
    assert again.status_code == 401
    # the family is gone: the newest token and its access token stop working too
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": rotated.json["refresh_token"]}).status_code == 401
    headers = {"Authorization": f"Bearer {rotated.json['access_token']}"}
    assert client.get("/api/v1/me", headers=headers).status_code == 401


def test_logout_revokes(client, alice):
    assert alice.post("/api/v1/auth/logout").status_code == 204
    assert alice.get("/api/v1/me").status_code == 401
    r = client.post("/api/v1/auth/refresh", json={"refresh_token": alice.tokens["refresh_token"]})
    assert r.status_code == 401


def test_bad_tokens(app, client, alice):
    key = app.extensions["odoosaas"].auth.jwt_key
    claims = jwt.decode(alice.tokens["access_token"], options={"verify_signature": False})
    expired = jwt.encode({**claims, "exp": now() - timedelta(seconds=5)}, key, algorithm="HS256")
    wrong_key = jwt.encode(claims, "another-secret-another-secret-xx", algorithm="HS256")
    wrong_aud = jwt.encode({**claims, "aud": "someone-else"}, key, algorithm="HS256")
    tampered = alice.tokens["access_token"][:-3] + ("aaa" if not alice.tokens["access_token"].endswith("aaa") else "bbb")
    for token in (expired, wrong_key, wrong_aud, tampered, "garbage"):
        r = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401 and r.json["error"]["code"] == "unauthenticated"
    assert client.get("/api/v1/me").status_code == 401


def test_password_reset_flow(app, client, alice):
    assert client.post("/api/v1/auth/password-reset", json={"email": "alice@example.com"}).status_code == 202
    assert client.post("/api/v1/auth/password-reset", json={"email": "ghost@example.com"}).json == {}
    outbox = list((app.extensions["odoosaas"].settings.data_dir / "outbox").glob("*.eml"))
    assert len(outbox) == 1, "no mail for an unknown account"
    token = outbox_link(app)
    assert token not in outbox[0].name
    confirm = {"token": token, "password": "brand-new-pass"}
    assert client.post("/api/v1/auth/password-reset/confirm", json=confirm).status_code == 204
    assert client.post("/api/v1/auth/password-reset/confirm", json=confirm).status_code == 400
    assert client.post("/api/v1/auth/login", json={"email": alice.email, "password": alice.password}).status_code == 401
    assert client.post("/api/v1/auth/login", json={"email": alice.email, "password": "brand-new-pass"}).status_code == 200
    assert alice.get("/api/v1/me").status_code == 401, "a reset ends the old sessions"


def test_reset_token_expires(workdir):
    app = make_app(workdir, reset_token_ttl=1)
    client = app.test_client()
    Caller(client, "carol@example.com")
    client.post("/api/v1/auth/password-reset", json={"email": "carol@example.com"})
    time.sleep(1.2)
    r = client.post("/api/v1/auth/password-reset/confirm", json={"token": outbox_link(app), "password": "brand-new-pass"})
    assert r.status_code == 400 and "token" in r.json["error"]["fields"]


def test_profile_update(alice):
    r = alice.patch("/api/v1/me", json={"full_name": "Alice A.", "company": "ACME"})
    assert r.status_code == 200 and r.json["user"]["company"] == "ACME"
    assert alice.patch("/api/v1/me", json={"email": "x@example.com"}).status_code == 400
    assert alice.get("/api/v1/me").json["user"]["full_name"] == "Alice A."


def test_rate_limit(workdir):
    app = make_app(workdir, rate_limit="3 per minute")
    client = app.test_client()
    codes = [client.post("/api/v1/auth/login", json={"email": "a@example.com", "password": "whatever"}).status_code
             for _ in range(5)]
    assert codes[:3] == [401, 401, 401] and codes[3:] == [429, 429]
    r = client.post("/api/v1/auth/password-reset", json={"email": "a@example.com"})
    assert r.status_code == 202, "each route has its own bucket"


def test_refresh_after_the_grace_keeps_the_tab_that_got_the_shared_token(workdir):
    app = make_app(workdir)
    client = app.test_client()
    first = Caller(client, "tabs@example.com").tokens["refresh_token"]
    tab_a, tab_b = (client.post("/api/v1/auth/refresh", json={"refresh_token": first}).json for _ in range(2))
    from sqlalchemy import update
    from odoosaas.store.models import AuthSession
    with app.extensions["odoosaas"].store.session() as db:  # a minute later ...
        db.execute(update(AuthSession).values(rotated_at=now() - timedelta(minutes=1)))
    # ... tab A refreshes with what it got: its token is the family's current one, not a reuse
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": tab_a["refresh_token"]}).status_code == 200


def test_body_rules(client, alice):
    r = client.post("/api/v1/auth/login", data="{not json", content_type="application/json")
    assert r.status_code == 400 and r.json["error"]["code"] == "invalid"
    r = client.post("/api/v1/auth/login", data="email=a", content_type="application/x-www-form-urlencoded")
    assert r.status_code == 415
    r = client.post("/api/v1/auth/signup", json={"email": "big@example.com", "password": "x" * 100_000})
    assert r.status_code == 413 and r.json["error"]["code"] == "too_large"
    r = client.post("/api/v1/auth/login", json=["a", "list"])
    assert r.status_code == 400
