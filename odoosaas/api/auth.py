"""Accounts: signup, login, tokens, password reset, profile (UA-1..4)."""
from flask_openapi3 import APIBlueprint, Tag

from odoosaas.api import BEARER, bearer_token, current_user, platform
from odoosaas.api.schemas import Login, Profile, Refresh, ResetConfirm, ResetRequest, Signup
from odoosaas.auth import public_user
from odoosaas.limits import limiter

bp = APIBlueprint("auth", __name__, url_prefix="/api/v1", abp_tags=[Tag(name="auth")])
rate_limited = limiter.shared_limit(lambda: platform().settings.rate_limit, scope="auth")


def tokens(issued: dict) -> dict:
    return {**issued, "user": public_user(issued["user"])}


@bp.post("/auth/signup")
@rate_limited
def signup(body: Signup):
    return {"user": public_user(platform().auth.signup(body.email, body.password, body.full_name))}, 201


@bp.post("/auth/login")
@rate_limited
def login(body: Login):
    return tokens(platform().auth.login(body.email, body.password))


@bp.post("/auth/refresh")
@rate_limited
def refresh(body: Refresh):
    return tokens(platform().auth.refresh(body.refresh_token))


@bp.post("/auth/logout", security=BEARER)
def logout():
    platform().auth.logout(bearer_token())
    return "", 204


@bp.post("/auth/password-reset")
@rate_limited
def password_reset(body: ResetRequest):
    platform().auth.request_reset(body.email)
    return {}, 202


@bp.post("/auth/password-reset/confirm")
@rate_limited
def password_reset_confirm(body: ResetConfirm):
    platform().auth.confirm_reset(body.token, body.password)
    return "", 204


@bp.get("/me", security=BEARER)
def me():
    return {"user": public_user(current_user())}


@bp.patch("/me", security=BEARER)
def update_me(body: Profile):
    return {"user": public_user(platform().auth.update_profile(current_user(), body.model_dump()))}
