"""Operations: every long action besides a tenant's lifecycle is a row that the one worker runs
as a flat list of idempotent steps for its kind. A new capability registers a step list here."""
from contextlib import nullcontext, suppress

from sqlalchemy import update
from werkzeug.exceptions import TooManyRequests

from odoosaas import apps
from odoosaas.errors import PermanentError
from odoosaas.reconcile.context import Context
from odoosaas.store.models import Operation, Tenant, now
from odoosaas.tenants import service

KINDS: dict[str, list[tuple]] = {}  # kind -> [(step name, fn(ctx)), ...]
UNDO: dict = {}  # kind -> fn(ctx): puts things back when a step fails for good (it may run again)


def register(kind: str, *steps: tuple, undo=None) -> None:
    KINDS[kind], UNDO[kind] = list(steps), undo


def enqueue(platform, kind: str, tenant_id: str | None = None, params: dict | None = None,
            requested_by: str | None = None, db=None, status="pending") -> Operation:
    """Record an operation (in the caller's unit of work when `db` is given) and wake the worker; one
    `requested` waits for an operator's approval."""
    progress = service.pending_steps(name for name, _ in KINDS[kind])
    operation = Operation(kind=kind, tenant_id=tenant_id, params=params or {}, progress=progress,
                          requested_by=requested_by, status=status)
    with platform.store.session() if db is None else nullcontext(db) as unit:
        unit.add(operation)
    platform.wake()
    return operation


def public(operation: Operation) -> dict:
    return {"id": operation.id, "kind": operation.kind, "status": operation.status, "error": operation.error,
            "params": operation.params, "tenant_id": operation.tenant_id,
            "progress": service.progress(operation.progress), "created_at": operation.created_at.isoformat(),
            "finished_at": operation.finished_at.isoformat() if operation.finished_at else None}


class OperationContext(Context):
    """An operation's pass; `spec()` and the tenant helpers work when it concerns a tenant."""
    row, message = "operation", "error"
    record = property(lambda self: self.operation)
    kind = property(lambda self: self.operation.kind)
    params = property(lambda self: self.operation.params)

    def __init__(self, platform, operation: Operation, tenant: Tenant | None):
        self.platform, self.operation, self.tenant, self.skip = platform, operation, tenant, set()
        if tenant is not None:
            super().__init__(platform, tenant)

    def plan(self) -> list:
        """The steps not done yet; the operation runs from its first pass."""
        if self.operation.status == "pending":
            self.keep(status="running")
        if "failed" in self.params:  # an undo began and a crash cut it short: it is finished, never the steps
            raise PermanentError(self.params["failed"])
        done = {s["name"] for s in self.operation.progress if s["state"] == "done"}
        return [(name, fn) for name, fn in KINDS[self.kind] if name not in done]

    def keep(self, **values) -> None:
        with self.platform.store.session() as db:
            db.execute(update(Operation).where(Operation.id == self.operation.id).values(**values))
        for key, value in values.items():
            setattr(self.operation, key, value)

    def superseded(self) -> bool:
        return False

    def complete(self) -> None:
        self.keep(status="done", error="", finished_at=now(), lease_until=None)

    def fail(self, step: str, message: str) -> None:
        if UNDO.get(self.kind):
            self.keep(params={**self.params, "failed": message})
            UNDO[self.kind](self)
        self.keep(status="failed", error=message, finished_at=now(), lease_until=None)


def send_password_reset(ctx) -> None:
    """Sent by the worker, not the request: the API answers alike for known and unknown emails."""
    with suppress(TooManyRequests):  # the provider mailed this address a moment ago (GoTrue's per-user interval):
        ctx.platform.auth.request_reset(ctx.params["email"])  # that link stands


def install_modules(ctx) -> None:
    """Odoo apps the owner asked for (FE-3), beside the running server; local driver only so far."""
    if not hasattr(ctx.platform.driver, "workdir"):
        raise PermanentError("Installing apps after creation is not available on this runtime yet.")
    workdir = ctx.platform.driver.workdir(ctx.tenant)
    apps.template(ctx.tenant.app).install_modules(ctx.spec(), workdir, ctx.params["names"])


register("password_reset", ("send", send_password_reset))
register("install_modules", ("install", install_modules))

from odoosaas.reconcile import backups, moves  # noqa: E402,F401  (register the `backup`, `restore`, `move` kinds)
