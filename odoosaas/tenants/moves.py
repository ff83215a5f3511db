"""Moves between database strategies (SI-7): asked for by a customer and approved by an operator (TM-7,
PA-5), started by an operator, or by a tier change whose rules want the other strategy. A request is a
`move` operation in status `requested`, which the worker leaves alone until an operator approves it."""
from contextlib import nullcontext

from sqlalchemy import select

from odoosaas.errors import Conflict, NotFound
from odoosaas.reconcile import operations
from odoosaas.store.models import Operation, Tenant, now
from odoosaas.tenants import service

# a request's status as the API names it, from its operation's (the last four keep their names)
STATUS = {"requested": "pending", "pending": "approved", **{s: s for s in "running done failed rejected".split()}}


def moves_of(db, tenant_id: str | None = None, statuses=("pending", "running")) -> list[Operation]:
    """Moves, newest first: those of one tenant in these statuses, or all."""
    query = select(Operation).where(Operation.kind == "move").order_by(Operation.created_at.desc())
    return list(db.scalars(query.where(Operation.tenant_id == tenant_id, Operation.status.in_(statuses))
                           if tenant_id else query))


def refuse_if_moving(db, tenant_id: str) -> None:
    """Until the switch: DDL is not replicated, and the app must stay where the move expects it."""
    if any("switched" not in o.params for o in moves_of(db, tenant_id)):
        raise Conflict("This instance is moving to another database server; try again when it is done.", "moving")


def start(platform, user, tenant_id: str, target: str, reason: str = "", db=None, status="pending") -> Operation:
    """A move of a running instance that is not moving (or asked to) already; by an operator, or asked for."""
    with platform.store.session() if db is None else nullcontext(db) as db:
        tenant = db.get(Tenant, tenant_id)
        if tenant is None or tenant.status == "deleted":
            raise NotFound("No such instance.")
        if tenant.db_strategy == target or tenant.desired != "running" or tenant.status != "running" or moves_of(
                db, tenant_id, ("requested", "pending", "running")):
            raise Conflict(f"Only a running instance, not moving, can move to a {target} database.", "invalid_state")
        service.record(db, tenant, "move", f"move to a {target} database {status}")
        if status == "pending":  # a backup first (an operator approving a request starts none)
            operations.enqueue(platform, "backup", tenant_id, {"kind": "pre_move", "mark": ""}, db=db)
        return operations.enqueue(platform, "move", tenant_id, {"target_strategy": target, "reason": reason},
                                  requested_by=user.id, db=db, status=status)


def ask(platform, user, tenant_id: str, target: str, reason: str) -> Operation:
    """A customer's request (TM-7): it waits for an operator."""
    with service.changing(platform, user, tenant_id) as (db, _):
        return start(platform, user, tenant_id, target, reason, db, "requested")


def asked(platform, user, tenant_id: str) -> list[dict]:
    with platform.store.session() as db:
        service.owned(db, user, tenant_id)
        return [public(o) for o in moves_of(db, tenant_id, tuple(STATUS))]


def decide(platform, operation_id: str, action: str) -> Operation:
    """An operator approves or rejects a request, or rolls a switched move back within its grace period
    (writes since the switch are lost)."""
    with platform.store.session() as db:
        operation = db.get(Operation, operation_id)
        if operation is None or operation.kind != "move":
            raise NotFound("No such move.")
        running = db.get(Tenant, operation.tenant_id).desired == "running"
        if action == "rollback" and operation.status == "running" and "switched" in operation.params and running:
            operation.params, operation.next_attempt_at = {**operation.params, "rollback": True}, now()
        elif action in ("approve", "reject") and operation.status == "requested":
            operation.status = "pending" if action == "approve" else "rejected"
            operation.finished_at = None if action == "approve" else now()
        else:
            raise Conflict("Only a pending request can be approved or rejected, and only a switched move of a running "
                           "instance whose old database is kept can roll back.", "invalid_state")
    platform.wake()
    return operation


def public(move: Operation) -> dict:
    """The API's `request`: a move's intent and state, with its operation (steps, timings, error)."""
    status = "rolled_back" if move.params.get("rolled_back") else STATUS[move.status]
    return {"id": move.id, "tenant_id": move.tenant_id, "target_strategy": move.params["target_strategy"],
            "reason": move.params.get("reason", ""), "status": status, "operation": operations.public(move)}
