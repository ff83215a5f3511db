"""The control plane's web application: API, pages, error rendering."""
import logging

from flask import make_response, request
from flask_openapi3 import Info, OpenAPI
from werkzeug.exceptions import HTTPException, InternalServerError, MethodNotAllowed, ServiceUnavailable

from odoosaas import api, limits, platform as platform_module, web
from odoosaas.errors import ApiError
from odoosaas.settings import Settings

log = logging.getLogger(__name__)
JSON_PATHS = ("/api/", "/healthz", "/readyz", "/metrics")  # everything else is a page


def create_app(overrides: dict | None = None, platform=None):
    """The Flask app; `overrides` are settings fields (tests), else the environment decides."""
    platform = platform or platform_module.build(Settings(**(overrides or {})))
    app = OpenAPI(__name__, info=Info(title="Odoo SaaS platform", version="1"), doc_prefix="/api",
                  doc_url="/openapi.json", validation_error_status=400,
                  validation_error_callback=api.validation_failed, validation_error_model=api.Error,
                  security_schemes={"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}})
    app.config.update(SECRET_KEY=platform.settings.secret_key, MAX_CONTENT_LENGTH=platform.settings.max_body_bytes)
    app.extensions["odoosaas"] = platform
    for extension in (limits, api, web):
        extension.init_app(app)
    app.after_request(no_framing)
    app.register_error_handler(Exception, render_error)
    app.add_url_rule("/maintenance", "maintenance", maintenance)
    return app


def maintenance():
    """Traefik's answer for an instance in maintenance (a move's switch, a restore): a page that says so, not a 502."""
    raise ServiceUnavailable("This instance is under maintenance (a move to another server, or a restore); "
                             "it is back in a moment.")


def no_framing(response):
    """The dashboard's one-click forms must not be clickjacked from another site."""
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Content-Security-Policy", "frame-ancestors 'none'")
    return response


def render_error(exc):
    """An API error, an HTTP exception or a crash: the site's page, or the JSON envelope under JSON_PATHS."""
    if not isinstance(exc, (ApiError, HTTPException)):
        log.exception("unhandled error on %s %s", request.method, request.path)
        exc = InternalServerError("Something went wrong on our side; it has been logged.")
    error = exc if isinstance(exc, ApiError) else api.as_api_error(exc)
    page = not request.path.startswith(JSON_PATHS)
    response = make_response(web.pages.error_page(error) if page else (error.envelope(), error.status))
    if isinstance(exc, MethodNotAllowed):  # RFC 9110: a 405 names the methods the resource has
        response.headers["Allow"] = ", ".join(exc.valid_methods or ())
    return response

