"""The HTML dashboard: server-rendered pages over the same domain functions as the API;
live parts poll with htmx (vendored under static/vendor/)."""
from odoosaas.tenants import rules
from odoosaas.web import account, billing, instances, operator, pages

for child in (account, billing, instances, operator):
    pages.bp.register_blueprint(child.bp)


def init_app(app) -> None:
    settings, provider = app.extensions["odoosaas"].settings, app.extensions["odoosaas"].billing
    app.config.update(SESSION_COOKIE_NAME="odoosaas_session", SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Lax", SESSION_COOKIE_SECURE=settings.public_scheme == "https")
    # errors: none until a form is checked
    app.jinja_env.globals.update(csrf_token=pages.csrf_token, BUSY=pages.BUSY, rules=rules, errors={},
                                 plans=lambda: provider.plans(settings))
    app.register_blueprint(pages.bp)
