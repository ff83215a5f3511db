"""Errors that steer control flow.

`ApiError` subclasses carry an HTTP status and render as the API's error envelope (or an
error page for the dashboard). `TemporaryError` and `PermanentError` steer the reconciler.
"""


class ApiError(Exception):
    status = 400
    code = "error"

    def __init__(self, message: str, code: str | None = None, fields: dict | None = None):
        super().__init__(message)
        self.message, self.code, self.fields = message, code or self.code, fields

    def envelope(self) -> dict:
        error = {"code": self.code, "message": self.message}
        return {"error": {**error, "fields": self.fields} if self.fields else error}


class Invalid(ApiError):
    status, code = 400, "invalid"


class Unauthenticated(ApiError):
    status, code = 401, "unauthenticated"


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class NotFound(ApiError):
    status, code = 404, "not_found"


class Conflict(ApiError):
    status, code = 409, "conflict"


class TemporaryError(Exception):
    """Retry the step after `delay` seconds."""

    def __init__(self, message: str, delay: float = 2.0):
        super().__init__(message)
        self.delay = delay


class PermanentError(Exception):
    """Stop and tell the user: the message is shown on the tenant."""
