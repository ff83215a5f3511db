"""Operator views (PA-1..7): every tenant, the overview, database servers."""
from flask_openapi3 import APIBlueprint, Tag

from odoosaas.api import BEARER, SIGNED_IN, current_admin, fails, platform
from odoosaas.api.schemas import AdminFilter, Items, Overview, TenantAnswer, TenantPath
from odoosaas.errors import NotFound
from odoosaas.store.models import Tenant
from odoosaas.tenants import fleet, service

# 403: not an operator
bp = APIBlueprint("admin", __name__, url_prefix="/api/v1/admin", abp_tags=[Tag(name="admin")], abp_responses=SIGNED_IN)


@bp.before_request
def operators_only():  # before the query is checked: a customer learns nothing more than 403
    current_admin()


def with_owner(tenant: Tenant) -> dict:
    return {**service.public(tenant), "owner_email": tenant.owner.email}


@bp.get("/tenants", security=BEARER, responses={200: Items})
def tenants(query: AdminFilter):
    with platform().store.session() as db:
        return {"items": [with_owner(t) for t in service.admin_list(db, **query.model_dump())]}


@bp.get("/tenants/<tenant_id>", security=BEARER, responses={200: TenantAnswer, **fails(404)})
def tenant(path: TenantPath):
    with platform().store.session() as db:
        row = db.get(Tenant, path.tenant_id)
        if row is None:
            raise NotFound("No such tenant.")
        return {"tenant": fleet.detail(db, row, platform())}


@bp.get("/overview", security=BEARER, responses={200: Overview})
def overview():
    with platform().store.session() as db:
        return fleet.overview(db, platform().driver)


@bp.get("/db-servers", security=BEARER, responses={200: Items})
def db_servers():
    with platform().store.session() as db:
        return {"items": fleet.db_servers(db)}
