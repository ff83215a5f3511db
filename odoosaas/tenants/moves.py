"""Moves between database strategies (SI-7, PA-5), started by an operator: the move operation's rules."""
from sqlalchemy import select

from odoosaas.errors import Conflict, NotFound
from odoosaas.reconcile import operations
from odoosaas.store.models import Operation, Tenant, now
from odoosaas.tenants import service


def moves_of(db, tenant_id: str | None = None) -> list[Operation]:
    """Moves, newest first: those of one tenant that are not finished, or all."""
    query = select(Operation).where(Operation.kind == "move").order_by(Operation.created_at.desc())
    return list(db.scalars(query.where(Operation.tenant_id == tenant_id, Operation.status.in_(("pending", "running")))
                           if tenant_id else query))


def refuse_if_moving(db, tenant_id: str) -> None:
    """Until the switch: DDL is not replicated, and the app must stay where the move expects it."""
    if any("switched" not in o.params for o in moves_of(db, tenant_id)):
        raise Conflict("This instance is moving to another database server; try again when it is done.", "moving")


def start(platform, user, tenant_id: str, target: str) -> Operation:
    with platform.store.session() as db:
        tenant = db.get(Tenant, tenant_id)
        if tenant is None or tenant.status == "deleted":
            raise NotFound("No such instance.")
        if tenant.db_strategy == target or tenant.desired != "running" or tenant.status != "running" or moves_of(
                db, tenant_id):
            raise Conflict(f"Only a running instance, not moving, can move to a {target} database.", "invalid_state")
        service.record(db, tenant, "move", f"move to a {target} database started")
        return operations.enqueue(platform, "move", tenant_id, {"target_strategy": target}, requested_by=user.id, db=db)


def roll_back(platform, operation_id: str) -> Operation:
    """A switched move within its grace period goes back to its source (writes since the switch are lost)."""
    with platform.store.session() as db:
        operation = db.get(Operation, operation_id)
        if operation is None or operation.kind != "move":
            raise NotFound("No such move.")
        if operation.status != "running" or "switched" not in operation.params or \
                db.get(Tenant, operation.tenant_id).desired != "running":
            raise Conflict("Only a switched move of a running instance whose old database is kept can roll back.",
                           "invalid_state")
        operation.params, operation.next_attempt_at = {**operation.params, "rollback": True}, now()
    platform.wake()
    return operation
