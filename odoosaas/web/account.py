"""Pages for accounts: landing, sign-up, log-in, log-out, forgotten password, profile."""
from flask import Blueprint, flash, g, redirect, render_template, request, session, url_for

from odoosaas.api.schemas import Login, Profile, ResetConfirm, ResetRequest, Signup
from odoosaas.errors import Unauthenticated
from odoosaas.limits import rate_limited
from odoosaas.reconcile import operations
from odoosaas.web.pages import fields, keep_tokens, platform, submit

bp = Blueprint("account", __name__)


@bp.get("/")
def landing():
    return redirect(url_for("web.instances.index")) if g.user else render_template("landing.html")


def show_form(template: str):
    """A page's form, empty but for what its link brings (`/login?email=`, `/reset-password?token=`)."""
    return render_template(template, errors={}, form=request.args)


for name, path in (("signup", "/signup"), ("login", "/login"), ("forgot", "/forgot-password"),
                   ("reset", "/reset-password"), ("profile", "/profile")):
    bp.add_url_rule(path, f"{name}_form", show_form, defaults={"template": f"{name}.html"})


@bp.post("/signup")
@rate_limited("signup")
def signup():
    def create(body: Signup):
        platform().auth.signup(body.email, body.password, body.full_name)
        flash("Your account is ready: log in.")
        return redirect(url_for(".login", email=body.email))
    return submit(Signup, fields(), create, "signup.html")


@bp.post("/login")
@rate_limited("login", per_account=True)
def login():
    def start_session(body: Login):
        issued = platform().auth.login(body.email, body.password)
        session.clear()  # a fresh session (and CSRF token) for the signed-in user
        keep_tokens(issued)
        return redirect(local_target(request.args.get("next", "")))
    return submit(Login, fields(), start_session, "login.html")


def local_target(target: str) -> str:
    """Where to go after log-in: a path on this site only."""
    local = target.startswith("/") and not target.startswith("//") and "\\" not in target and target.isprintable()
    return target if local else url_for(".landing")


@bp.post("/logout")
def logout():
    try:
        platform().auth.logout(session.get("access", ""))
    except Unauthenticated:
        pass  # already over
    session.clear()
    return redirect(url_for(".landing"))


@bp.post("/forgot-password")
@rate_limited("reset", per_account=True)
def forgot():
    def send(body: ResetRequest):
        operations.enqueue(platform(), "password_reset", params={"email": body.email})  # mailed by the worker
        flash("If an account uses this address, a link to set a new password is on its way.")
        return redirect(url_for(".login"))
    return submit(ResetRequest, fields(), send, "forgot.html")


@bp.post("/reset-password")
@rate_limited("reset-confirm")
def reset():
    def confirm(body: ResetConfirm):
        platform().auth.confirm_reset(body.token, body.password)
        flash("Your password is changed: log in with the new one.")
        return redirect(url_for(".login"))
    return submit(ResetConfirm, fields(), confirm, "reset.html")


@bp.post("/profile")
def profile():
    def save(body: Profile):
        platform().auth.update_profile(session["access"], body.model_dump())
        flash("Profile saved.")
        return redirect(url_for(".profile_form"))
    return submit(Profile, fields(), save, "profile.html")
