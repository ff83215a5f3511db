"""Accounts: signup, login, tokens, password reset, profile (UA-1..4)."""
from flask_openapi3 import APIBlueprint, Tag

from odoosaas.api import BEARER, bearer_token, current_user, platform
from odoosaas.api.schemas import Login, Profile, Refresh, ResetConfirm, ResetRequest, Signup
from odoosaas.auth import public_user
from odoosaas.limits import rate_limited
from odoosaas.reconcile import operations

bp = APIBlueprint("auth", __name__, url_prefix="/api/v1", abp_tags=[Tag(name="auth")])


def tokens(issued: dict) -> dict:
    return {**issued, "user": public_user(issued["user"])}


@bp.post("/auth/signup")
@rate_limited("signup")
def signup(body: Signup):
    return {"user": public_user(platform().auth.signup(body.email, body.password, body.full_name))}, 201


@bp.post("/auth/login")
@rate_limited("login", per_account=True)
def login(body: Login):
    return tokens(platform().auth.login(body.email, body.password))


@bp.post("/auth/refresh")
@rate_limited("refresh")
def refresh(body: Refresh):
    return tokens(platform().auth.refresh(body.refresh_token))


@bp.post("/auth/logout", security=BEARER)
def logout():
    platform().auth.logout(bearer_token())
    return "", 204


@bp.post("/auth/password-reset")
@rate_limited("reset", per_account=True)
def password_reset(body: ResetRequest):
    operations.enqueue(platform(), "password_reset", params={"email": body.email})  # mailed by the worker
    return {}, 202


@bp.post("/auth/password-reset/confirm")
@rate_limited("reset-confirm")
def password_reset_confirm(body: ResetConfirm):
    platform().auth.confirm_reset(body.token, body.password)
    return "", 204


@bp.get("/me", security=BEARER)
def me():
    return {"user": public_user(current_user())}


@bp.patch("/me", security=BEARER)
def update_me(body: Profile):
    return {"user": public_user(platform().auth.update_profile(bearer_token(), body.model_dump()))}
