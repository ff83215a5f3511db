"""What is particular to Supabase Auth as the identity provider, against a real GoTrue
(tests/supabase_env.py): who is an operator, users deleted or banned there, the mail's token_hash,
the admin API, asymmetric signing keys, the store in the project's own database."""
import json
import secrets

import httpx
import jwt
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from werkzeug.exceptions import TooManyRequests

from odoosaas.pg.clusters import free_port
from tests.conftest import make_app
from tests.supabase_env import Accounts, api_key, gotrue_env, running_worker, start_gotrue


@pytest.fixture
def supabase(workdir, gotrue, mail_sink):
    def build(worker: bool = False, **settings):
        app = make_app(workdir / str(len(apps)), **{**gotrue.settings, **settings})
        apps.append((app, running_worker(app.extensions["odoosaas"]) if worker else lambda: None))
        return Accounts("supabase", app, mail_sink, gotrue)
    apps = []
    yield build
    for app, stop_worker in apps:
        stop_worker()
        app.extensions["odoosaas"].driver.close()
        app.extensions["odoosaas"].store.dispose()


def admin_update(gotrue, user_id: str, **attributes) -> None:
    assert gotrue.admin.put(f"/admin/users/{user_id}", json=attributes).status_code == 200


def test_only_the_service_role_or_the_operator_list_makes_an_operator(supabase, gotrue):
    accounts = supabase()
    mallory = accounts.caller("mallory")
    # user_metadata is the user's own to write, straight at GoTrue with their token
    answer = httpx.put(f"{gotrue.url}/user", headers={"Authorization": f"Bearer {mallory.tokens['access_token']}"},
                       json={"data": {"role": "admin", "is_admin": True}})
    assert answer.status_code == 200 and answer.json()["user_metadata"]["role"] == "admin"
    claimed = accounts.client.post("/api/v1/auth/refresh", json={"refresh_token": mallory.tokens["refresh_token"]}).json
    assert jwt.decode(claimed["access_token"], options={"verify_signature": False})["user_metadata"]["role"] == "admin"
    headers = {"Authorization": f"Bearer {claimed['access_token']}"}
    assert claimed["user"]["is_admin"] is False
    assert accounts.client.get("/api/v1/admin/tenants", headers=headers).status_code == 403
    # app_metadata is written by the service role only
    admin_update(gotrue, claimed["user"]["id"], app_metadata={"role": "admin"})
    promoted = accounts.client.post("/api/v1/auth/refresh", json={"refresh_token": claimed["refresh_token"]}).json
    assert promoted["user"]["is_admin"] is True
    assert accounts.client.get("/api/v1/admin/tenants",
                               headers={"Authorization": f"Bearer {promoted['access_token']}"}).status_code == 200
    named = supabase(operator_emails=f" {accounts.email('x')}, {mallory.email.upper()} ")
    assert named.client.post("/api/v1/auth/login", json={"email": mallory.email, "password": mallory.password}
                             ).json["user"]["is_admin"] is True


def test_deleted_or_banned_users_stop_creating_and_deleting_at_once(supabase, gotrue):
    accounts = supabase()
    banned, deleted = accounts.caller("banned"), accounts.caller("deleted")
    created = banned.create(f"ban-{secrets.token_hex(3)}")
    assert created.status_code == 202
    admin_update(gotrue, banned.tokens["user"]["id"], ban_duration="24h")
    assert gotrue.admin.delete(f"/admin/users/{deleted.tokens['user']['id']}").status_code == 200
    assert banned.get("/api/v1/me").status_code == 200, "reads check the token here, until it expires"
    refused = banned.create(f"ban-{secrets.token_hex(3)}")
    assert refused.status_code == 403 and refused.json["error"]["code"] == "user_banned"
    assert banned.delete(f"/api/v1/tenants/{created.json['tenant']['id']}").status_code == 403
    assert deleted.create(f"del-{secrets.token_hex(3)}").status_code == 401
    assert accounts.client.post("/api/v1/auth/login", json={"email": banned.email, "password": banned.password}
                                ).status_code == 403


def test_reset_with_the_token_hash_of_the_mail(supabase):
    """A recovery mail template that links straight to the portal carries the token_hash."""
    accounts = supabase(worker=True)  # it mails the reset
    alice = accounts.caller("alice")
    token_hash = httpx.URL(accounts.reset_link(alice.email)).params["token"]
    confirm = {"token": token_hash, "password": "brand-new-pass"}
    assert accounts.client.post("/api/v1/auth/password-reset/confirm", json=confirm).status_code == 204
    assert accounts.client.post("/api/v1/auth/password-reset/confirm", json=confirm).status_code == 400
    login = {"email": alice.email, "password": "brand-new-pass"}
    assert accounts.client.post("/api/v1/auth/login", json=login).status_code == 200


def test_gotrues_own_limits_and_outages_keep_the_error_envelope(supabase, workdir):
    accounts = supabase()
    alice = accounts.caller("alice")
    accounts.platform.auth.request_reset(alice.email)
    with pytest.raises(TooManyRequests):  # within GOTRUE_SMTP_MAX_FREQUENCY: the API answers 429 `rate_limited`
        accounts.platform.auth.request_reset(alice.email)
    down = supabase(supabase_url=f"http://127.0.0.1:{free_port()}").client
    r = down.post("/api/v1/auth/login", json={"email": alice.email, "password": alice.password})
    assert r.status_code == 503 and r.json["error"]["code"] == "auth_unavailable"


def test_create_admin_makes_or_updates_the_account_through_the_admin_api(supabase):
    accounts = supabase()
    address = accounts.email("boss")
    accounts.platform.auth.ensure_operator(address, "first-password")
    accounts.platform.auth.ensure_operator(address, "second-password")
    login = accounts.client.post("/api/v1/auth/login", json={"email": address, "password": "second-password"})
    assert login.status_code == 200 and login.json["user"]["is_admin"] is True


def test_the_store_lives_in_the_supabase_projects_database(supabase, gotrue, pg_admin):
    """As on a Supabase project: the platform's tables in `public` beside GoTrue's `auth` schema."""
    accounts = supabase(database_url=gotrue.database)
    accounts.platform.store.upgrade()
    owner = accounts.caller("owner")
    tenant = owner.create(f"own-{secrets.token_hex(3)}").json["tenant"]
    with psycopg.connect(**pg_admin, dbname="supabase") as conn:
        row = conn.execute("SELECT a.id::text, t.subdomain FROM auth.users a JOIN public.users u ON u.id = a.id::text "
                           "JOIN public.tenants t ON t.owner_id = u.id WHERE a.email = %s", (owner.email,)).fetchone()
    assert row == (owner.tokens["user"]["id"], tenant["subdomain"])


@pytest.fixture(scope="module")
def gotrue_es256(gotrue, pg_admin, mail_sink):
    """A second GoTrue on the same database that signs with an EC key (Supabase's asymmetric keys)."""
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key)), "kid": "es256-test", "alg": "ES256",
           "key_ops": ["sign", "verify"]}
    password = gotrue.env["DATABASE_URL"].split(":")[2].split("@")[0]
    env = gotrue_env(pg_admin, password, free_port(), mail_sink.port, GOTRUE_JWT_SECRET=gotrue.secret,
                     GOTRUE_JWT_KEYS=json.dumps([jwk]))
    process = start_gotrue(gotrue.binary, env, gotrue.folder)
    yield env["API_EXTERNAL_URL"], api_key(key, "anon", "ES256", "es256-test")
    process.terminate()
    process.wait(10)


def test_asymmetric_signing_keys_are_checked_with_the_jwks(supabase, gotrue, gotrue_es256):
    url, anon_key = gotrue_es256
    accounts = supabase(supabase_url=url, supabase_anon_key=anon_key, supabase_jwt_secret="")
    alice = accounts.caller("alice")
    assert jwt.get_unverified_header(alice.tokens["access_token"])["alg"] == "ES256"
    assert alice.get("/api/v1/me").status_code == 200
    assert alice.create(f"es-{secrets.token_hex(3)}").status_code == 202
    # HS256 tokens, even ones the secret really signed, are refused without ODOOSAAS_SUPABASE_JWT_SECRET
    claims = jwt.decode(alice.tokens["access_token"], options={"verify_signature": False})
    hs256 = jwt.encode(claims, gotrue.secret, algorithm="HS256")
    assert accounts.client.get("/api/v1/me", headers={"Authorization": f"Bearer {hs256}"}).status_code == 401
