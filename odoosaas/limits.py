"""Rate limits (Flask-Limiter). Signup, login, refresh and reset each count per client address, and
login and reset also per account, so one noisy client neither blocks the other routes nor, behind a
proxy, everybody. The client address is the peer's unless ODOOSAAS_TRUSTED_PROXIES says how many
proxies' X-Forwarded-For to believe. Counts live in ODOOSAAS_RATE_LIMIT_STORAGE: `memory://` counts per
process (each API replica on its own), `redis://...` shares them."""
from flask import current_app, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from werkzeug.middleware.proxy_fix import ProxyFix

limiter = Limiter(key_func=get_remote_address, default_limits=[])


def init_app(app) -> None:
    settings = app.extensions["odoosaas"].settings  # 0 trusted proxies: ProxyFix believes no header
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies, x_proto=settings.trusted_proxies)
    app.config["RATELIMIT_STORAGE_URI"] = settings.rate_limit_storage
    limiter.init_app(app)


def account() -> str:
    """The email a login or reset is about, sent as JSON (API) or as a form (pages). Limits are checked when the
    view runs, so the body is already known to be a JSON object or a form."""
    return str((request.get_json(silent=True) or request.form).get("email", "")).strip().lower()


def rate_limited(route: str, per_account: bool = False):
    """The route's own limit per client (and per account), counted alike for its API call and the page calling it."""
    rate = lambda: current_app.extensions["odoosaas"].settings.rate_limit  # noqa: E731 (read per request)
    per_client = limiter.shared_limit(rate, scope=route)
    per_email = limiter.shared_limit(rate, scope=f"{route}:account", key_func=account)
    return (lambda view: per_client(per_email(view))) if per_account else per_client
