"""The JSON API under /api/v1: thin routes over the domain; one error envelope everywhere."""
from flask import current_app, g, jsonify, make_response, request
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException, UnsupportedMediaType

from odoosaas.api.schemas import Error
from odoosaas.errors import ApiError, Invalid, Unauthenticated

BEARER = [{"bearer": []}]
PUBLIC = ("/api/v1/auth/", "/api/v1/subdomains/", "/api/v1/plans", "/api/v1/billing/notifications",
          "/api/v1/backup-downloads/")  # the link is the credential
HTTP_CODES = {400: "invalid", 401: "unauthenticated", 404: "not_found", 405: "method_not_allowed",
              413: "too_large", 415: "unsupported_media_type", 429: "rate_limited", 500: "internal"}


def fails(*statuses: int) -> dict:
    """OpenAPI responses: each of these statuses, and 400, answers with the error envelope (a route that
    declares no 400 gets flask-openapi3's validation-error array)."""
    return {status: Error for status in (400, *statuses)}


BODY = fails(413, 415)  # a JSON body: malformed or invalid (400), too large, not JSON
SIGNED_IN = fails(401, 403, 503)  # no or bad token; Supabase: the account is suspended, or unreachable


def platform():
    return current_app.extensions["odoosaas"]


def bearer_token() -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Send `Authorization: Bearer <access token>`.")
    return token.strip()


def current_user():
    """The caller, from the bearer token (or the dashboard's session); 401 otherwise."""
    if "user" not in g:  # calls that change something ask the provider: a banned or logged-out user stops now
        g.user = platform().auth.authenticate(bearer_token(), live=request.method != "GET")
    return g.user


def as_api_error(exc: HTTPException) -> ApiError:
    """An HTTP exception (werkzeug's, Flask-Limiter's 429) as the platform's error, rendered like any other."""
    error = ApiError(exc.description or exc.name, HTTP_CODES.get(exc.code, "error"))
    error.status = exc.code or 500
    return error


def validation_failed(exc: ValidationError):
    """The envelope naming each wrong field (a.b.0 for nested ones) with its first problem."""
    fields = {".".join(map(str, problem["loc"])) or "body": "unknown field" if problem["type"] == "extra_forbidden"
              else problem["msg"] for problem in reversed(exc.errors())}
    return make_response(jsonify(Invalid("Some fields are missing or invalid.", fields=fields).envelope()), 400)


def require_json():
    """Bodies are JSON objects: wrong content type 415, malformed JSON 400."""
    if request.method in ("POST", "PUT", "PATCH") and request.path.startswith("/api/") and (
            request.content_length or request.data):
        if not request.is_json:
            raise UnsupportedMediaType("Send JSON with Content-Type: application/json.")
        if not isinstance(request.get_json(silent=True), dict):
            raise Invalid("The body is not a JSON object.", fields={"body": "malformed JSON"})


def authenticate_first():
    """Unauthenticated callers get 401 before any validation of what they sent."""
    if request.path.startswith("/api/v1/") and not request.path.startswith(PUBLIC):
        current_user()


def init_app(app) -> None:
    from odoosaas.api import admin, auth, backups, billing, ops, tenants
    app.before_request(authenticate_first)
    app.before_request(require_json)
    for module in (auth, tenants, backups, billing, admin, ops):
        app.register_api(module.bp)
