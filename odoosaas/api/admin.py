"""Operator views (PA-1..7): every tenant, the overview, database servers; moves between database
strategies (PA-5): start one, see them, roll one back."""
from typing import Literal

from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field

from odoosaas.api import BEARER, BODY, SIGNED_IN, current_user, fails, platform, schemas
from odoosaas.errors import Forbidden
from odoosaas.reconcile import operations
from odoosaas.store.models import Tenant
from odoosaas.tenants import fleet, moves, service

# 403: not an operator
bp = APIBlueprint("admin", __name__, url_prefix="/api/v1/admin", abp_tags=[Tag(name="admin")], abp_responses=SIGNED_IN)


class MoveAction(BaseModel):
    move_id: str
    action: Literal["approve", "reject", "rollback"]


class MoveFilter(BaseModel):
    status: str = Field("", max_length=20)


@bp.before_request
def operators_only():  # before the query is checked: a customer learns nothing more than 403
    if not current_user().is_admin:
        raise Forbidden("Operators only.")


@bp.get("/tenants", security=BEARER, responses={200: schemas.Items})
def tenants(query: schemas.AdminFilter):
    with platform().store.session() as db:
        return {"items": [fleet.with_owner(t) for t in service.admin_list(db, **query.model_dump())]}


@bp.get("/tenants/<tenant_id>", security=BEARER, responses={200: schemas.TenantAnswer, **fails(404)})
def tenant(path: schemas.TenantPath):
    with platform().store.session() as db:
        return {"tenant": fleet.detail(db, path.tenant_id, platform())}


@bp.get("/overview", security=BEARER, responses={200: schemas.Overview})
def overview():
    with platform().store.session() as db:
        return fleet.overview(db, platform().driver)


@bp.get("/db-servers", security=BEARER, responses={200: schemas.Items})
def db_servers():
    with platform().store.session() as db:
        return {"items": fleet.db_servers(db)}


@bp.post("/tenants/<tenant_id>/migrate", security=BEARER,
         responses={202: schemas.OperationAnswer, **BODY, **fails(404, 409)})
def migrate(path: schemas.TenantPath, body: schemas.MoveRequest):
    """Move a running tenant now (PA-5); the body is a customer's request's: the target and, optionally, why."""
    operation = moves.start(platform(), current_user(), path.tenant_id, body.target_strategy, body.reason)
    return {"operation": operations.public(operation)}, 202


@bp.get("/migrations", security=BEARER, responses={200: schemas.Items})
def migrations(query: MoveFilter):
    """Moves and customers' requests, newest first, with their tenant's subdomain; `status` as in a request
    (pending: awaiting approval)."""
    with platform().store.session() as db:
        items = [{**moves.public(o), "subdomain": db.get(Tenant, o.tenant_id).subdomain} for o in moves.moves_of(db)]
    return {"items": [item for item in items if item["status"] == query.status or not query.status]}


@bp.post("/migrations/<move_id>/<any(approve, reject, rollback):action>", security=BEARER,
         responses={202: schemas.RequestAnswer, **fails(404, 409)})
def decide(path: MoveAction):
    return {"request": moves.public(moves.decide(platform(), path.move_id, path.action))}, 202
