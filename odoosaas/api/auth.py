"""Accounts: signup, login, tokens, password reset, profile (UA-1..4)."""
from flask_openapi3 import APIBlueprint, Tag

from odoosaas.api import BEARER, BODY, SIGNED_IN, bearer_token, current_user, fails, platform
from odoosaas.api.schemas import Login, Profile, Refresh, ResetConfirm, ResetRequest, Signup, Tokens, UserAnswer, answer
from odoosaas.limits import rate_limited
from odoosaas.reconcile import operations

# Every call may find the account service (Supabase) unreachable: 503.
bp = APIBlueprint("auth", __name__, url_prefix="/api/v1", abp_tags=[Tag(name="auth")], abp_responses=fails(503))
SESSION = {200: Tokens, **BODY, **fails(401, 403, 429)}  # 403: Supabase suspended the account


def public_user(user) -> dict:
    return {"id": user.id, "email": user.email, "full_name": user.full_name, "company": user.company,
            "is_admin": user.is_admin, "created_at": user.created_at.isoformat()}


def tokens(issued: dict) -> dict:
    return {**issued, "user": public_user(issued["user"])}


@bp.post("/auth/signup", responses={201: UserAnswer, **BODY, **fails(409, 429)})
@rate_limited("signup")
def signup(body: Signup):
    user = platform().auth.signup(body.email, body.password, body.full_name)
    platform().billing.signed_up(user)
    return {"user": public_user(user)}, 201


@bp.post("/auth/login", responses=SESSION)
@rate_limited("login", per_account=True)
def login(body: Login):
    return tokens(platform().auth.login(body.email, body.password))


@bp.post("/auth/refresh", responses=SESSION)
@rate_limited("refresh")
def refresh(body: Refresh):
    return tokens(platform().auth.refresh(body.refresh_token))


@bp.post("/auth/logout", security=BEARER, responses={204: None, **BODY, **SIGNED_IN})
def logout():
    platform().auth.logout(bearer_token())
    return "", 204


@bp.post("/auth/password-reset", responses={202: answer("Accepted"), **BODY, **fails(429)})
@rate_limited("reset", per_account=True)
def password_reset(body: ResetRequest):
    operations.enqueue(platform(), "password_reset", params={"email": body.email})  # mailed by the worker
    return {}, 202


@bp.post("/auth/password-reset/confirm", responses={204: None, **BODY, **fails(429)})
@rate_limited("reset-confirm")
def password_reset_confirm(body: ResetConfirm):
    platform().auth.confirm_reset(body.token, body.password)
    return "", 204


@bp.get("/me", security=BEARER, responses={200: UserAnswer, **SIGNED_IN})
def me():
    return {"user": public_user(current_user())}


@bp.patch("/me", security=BEARER, responses={200: UserAnswer, **BODY, **SIGNED_IN})
def update_me(body: Profile):
    return {"user": public_user(platform().auth.update_profile(bearer_token(), body.model_dump(exclude_none=True)))}
