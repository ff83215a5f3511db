"""The HTML dashboard: server-rendered pages over the same domain functions as the API;
live parts poll with htmx (vendored under static/vendor/)."""
from odoosaas.tenants import rules
from odoosaas.web import account, instances, operator, pages

for child in (account, instances, operator):
    pages.bp.register_blueprint(child.bp)


def init_app(app) -> None:
    settings = app.extensions["odoosaas"].settings
    app.config.update(SESSION_COOKIE_NAME="odoosaas_session", SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Lax", SESSION_COOKIE_SECURE=settings.public_scheme == "https")
    # errors: none until a form is checked
    app.jinja_env.globals.update(csrf_token=pages.csrf_token, BUSY=pages.BUSY, rules=rules, errors={})
    app.register_blueprint(pages.bp)
