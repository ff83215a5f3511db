"""Errors that steer control flow.

`ApiError` subclasses carry an HTTP status and render as the API's error envelope (or an
error page for the dashboard). `TemporaryError` and `PermanentError` steer the reconciler.
"""


class ApiError(Exception):
    """A subclass names its HTTP status and default code in its header, as `class Gone(ApiError, status=410,
    code="gone")`; ApiError itself is a 400 unless its `status` is set (an HTTP exception converted)."""
    status, code = 400, "error"

    def __init_subclass__(cls, status: int, code: str):
        cls.status, cls.code = status, code

    def __init__(self, message: str, code: str | None = None, fields: dict | None = None):
        super().__init__(message)
        self.message, self.code, self.fields = message, code or self.code, fields

    def envelope(self) -> dict:
        error = {"code": self.code, "message": self.message}
        return {"error": {**error, "fields": self.fields} if self.fields else error}


class Invalid(ApiError, status=400, code="invalid"):
    """Malformed or missing input; `fields` says which and why."""


class Unauthenticated(ApiError, status=401, code="unauthenticated"):
    """No token, or a bad or expired one."""


class Forbidden(ApiError, status=403, code="forbidden"):
    """Signed in, but not allowed (a customer on an operator's route)."""


class NotFound(ApiError, status=404, code="not_found"):
    """Unknown, or another user's: never a 403 for someone else's tenant."""


class Conflict(ApiError, status=409, code="conflict"):
    """Not possible in the current state (a taken name, a limit reached, a tenant being deleted)."""


class TemporaryError(Exception):
    """Retry the step after `delay` seconds."""

    def __init__(self, message: str, delay: float = 2.0):
        super().__init__(message)
        self.delay = delay


class PermanentError(Exception):
    """Stop and tell the user: the message is shown on the tenant."""
