"""What every page shares: the signed-in user, CSRF tokens, form checking, error pages.

Pages keep the identity provider's access and refresh tokens in Flask's signed session
cookie (HttpOnly, SameSite=Lax); every form carries a per-session CSRF token.
"""
import contextlib
import secrets

from flask import Blueprint, flash, g, redirect, render_template, request, session, url_for
from pydantic import ValidationError

from odoosaas.api import platform
from odoosaas.errors import ApiError, Conflict, Forbidden, Unauthenticated

bp = Blueprint("web", __name__, template_folder="templates", static_folder="static", static_url_path="/assets")
PUBLIC = {"web.static", *(f"web.account.{name}" for name in (
    "landing", "signup_form", "signup", "login_form", "login", "forgot_form", "forgot", "reset_form", "reset"))}
BUSY = ("creating", "starting", "stopping", "deleting", "migrating")  # statuses that change on their own


def keep_tokens(issued: dict) -> None:
    session["access"], session["refresh"] = issued["access_token"], issued["refresh_token"]


def signed_in_user():
    """The user of the session's access token; an expired one is refreshed once, else None."""
    auth = platform().auth
    with contextlib.suppress(Unauthenticated):
        return auth.authenticate(session.get("access", ""), live=request.method != "GET")  # changes ask the provider
    if "refresh" in session:
        with contextlib.suppress(Unauthenticated):
            issued = auth.refresh(session["refresh"])
            keep_tokens(issued)
            return issued["user"]
        for key in ("access", "refresh"):  # both over
            session.pop(key, None)
    return None


def csrf_token() -> str:
    return session.setdefault("csrf", secrets.token_urlsafe(32))


@bp.before_request
def guard():
    """Every page: who is asking, a valid CSRF token on forms, log-in unless public."""
    if request.endpoint == "web.static":
        return None
    g.user = signed_in_user()
    if request.method == "POST" and not secrets.compare_digest(csrf_token(), request.form.get("csrf_token", "")):
        raise Forbidden("This form has expired or came from another site; reload the page and try again.")
    if g.user is None and request.endpoint not in PUBLIC:
        target = url_for("web.account.login", next=request.full_path)
        return ("", 204, {"HX-Redirect": target}) if request.headers.get("HX-Request") else redirect(target)
    return None


def fields() -> dict:
    return {name: value for name, value in request.form.items() if name != "csrf_token"}


def submit(model, data: dict, action, template: str, **context):
    """Check the form with the API's model and run `action`; on a problem, show the form again
    with a message next to each field it concerns."""
    try:
        return action(model.model_validate(data))
    except ValidationError as exc:
        errors = {str(p["loc"][0]) if p["loc"] else "form": p["msg"].removeprefix("Value error, ")
                  for p in exc.errors()}
    except ApiError as exc:
        errors = {**(exc.fields or {}), "form": exc.message}
    return render_template(template, errors=errors, form=request.form, **context), 400


def flashing_conflicts(action, *args) -> None:
    """Run `action`; a conflict (the state changed meanwhile) is said on the next page, not as an error page."""
    try:
        action(*args)
    except Conflict as exc:
        flash(exc.message)


def error_page(error: ApiError):
    """The site's page for an error raised outside the JSON API."""
    return render_template("error.html", error=error), error.status
