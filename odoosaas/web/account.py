"""Pages for accounts: landing, sign-up, log-in, log-out, forgotten password, profile.

The forms call the auth API's views (plain functions), so a page and its API call share one rate limit."""
import contextlib

from flask import Blueprint, flash, g, redirect, render_template, request, session, url_for

from odoosaas.api import auth as answers
from odoosaas.api.schemas import Login, Profile, ResetConfirm, ResetRequest, Signup
from odoosaas.errors import Unauthenticated
from odoosaas.web.pages import fields, keep_tokens, platform, submit

bp = Blueprint("account", __name__)


@bp.get("/")
def landing():
    """The start page: the signed-in user's instances, else the log-in form (which links to sign-up)."""
    return redirect(url_for("web.instances.index" if g.user else ".login_form"))


def form_page(path: str, model):
    """A page with a form: GET shows it, empty but for what its link brings (`/login?email=`,
    `/reset-password?token=`); POST checks it with the API's `model` and runs the decorated action;
    both use the template named like the action."""
    def register(action):
        name = action.__name__
        bp.add_url_rule(path, f"{name}_form", lambda: render_template(f"{name}.html", form=request.args))
        bp.add_url_rule(path, name, lambda: submit(model, fields(), action, f"{name}.html"), methods=["POST"])
        return action
    return register


def done(message: str, endpoint: str, **values):
    """Say `message` on the page the form leads to."""
    flash(message)
    return redirect(url_for(endpoint, **values))


@form_page("/signup", Signup)
def signup(body: Signup):
    answers.signup(body)
    return done("Your account is ready: log in.", ".login", email=body.email)


@form_page("/login", Login)
def login(body: Login):
    issued = answers.login(body)
    session.clear()  # a fresh session (and CSRF token) for the signed-in user
    keep_tokens(issued)
    target = request.args.get("next", "")  # where to go now: a path on this site only
    local = target.startswith("/") and not target.startswith("//") and "\\" not in target and target.isprintable()
    return redirect(target if local else url_for(".landing"))


@bp.post("/logout")
def logout():
    with contextlib.suppress(Unauthenticated):  # already over
        platform().auth.logout(session.get("access", ""))
    session.clear()
    return redirect(url_for(".landing"))


@form_page("/forgot-password", ResetRequest)
def forgot(body: ResetRequest):
    answers.password_reset(body)
    return done("If an account uses this address, a link to set a new password is on its way.", ".login")


@form_page("/reset-password", ResetConfirm)
def reset(body: ResetConfirm):
    answers.password_reset_confirm(body)
    return done("Your password is changed: log in with the new one.", ".login")


@form_page("/profile", Profile)
def profile(body: Profile):
    platform().auth.update_profile(session["access"], body.model_dump(exclude_none=True))
    return done("Profile saved.", ".profile_form")
