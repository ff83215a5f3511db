"""Moves between database strategies, for operators (PA-5): start one, see them, roll one back."""
from typing import Literal

from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel

from odoosaas.api import BEARER, BODY, SIGNED_IN, current_admin, fails, platform
from odoosaas.api.schemas import Body, Items, OperationAnswer, TenantPath
from odoosaas.reconcile import operations
from odoosaas.tenants import moves

bp = APIBlueprint("moves", __name__, url_prefix="/api/v1/admin", abp_tags=[Tag(name="admin")],
                  abp_responses={**fails(400, 404), **SIGNED_IN})


class MoveTarget(Body):
    target_strategy: Literal["shared", "dedicated"]


class MovePath(BaseModel):
    move_id: str


@bp.post("/tenants/<tenant_id>/migrate", security=BEARER, responses={202: OperationAnswer, **BODY, **fails(409)})
def migrate(path: TenantPath, body: MoveTarget):
    operation = moves.start(platform(), current_admin(), path.tenant_id, body.target_strategy)
    return {"operation": operations.public(operation)}, 202


@bp.get("/migrations", security=BEARER, responses={200: Items})
def migrations():
    current_admin()
    with platform().store.session() as db:
        return {"items": [operations.public(o) for o in moves.moves_of(db)]}


@bp.post("/migrations/<move_id>/rollback", security=BEARER, responses={202: OperationAnswer, **fails(409)})
def rollback(path: MovePath):
    current_admin()
    return {"operation": operations.public(moves.roll_back(platform(), path.move_id))}, 202
