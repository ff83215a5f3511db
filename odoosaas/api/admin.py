"""Operator views (PA-1..7): every tenant, the overview, database servers."""
from flask_openapi3 import APIBlueprint, Tag

from odoosaas.api import BEARER, current_admin, platform
from odoosaas.api.schemas import AdminFilter, TenantPath
from odoosaas.errors import NotFound
from odoosaas.store.models import Tenant
from odoosaas.tenants import fleet, service

bp = APIBlueprint("admin", __name__, url_prefix="/api/v1/admin", abp_tags=[Tag(name="admin")])


def with_owner(tenant: Tenant) -> dict:
    return {**service.public(tenant), "owner_email": tenant.owner.email}


@bp.get("/tenants", security=BEARER)
def tenants(query: AdminFilter):
    current_admin()
    with platform().store.session() as db:
        return {"items": [with_owner(t) for t in service.admin_list(db, **query.model_dump())]}


@bp.get("/tenants/<tenant_id>", security=BEARER)
def tenant(path: TenantPath):
    current_admin()
    with platform().store.session() as db:
        row = db.get(Tenant, path.tenant_id)
        if row is None:
            raise NotFound("No such tenant.")
        return {"tenant": fleet.detail(db, row, platform())}


@bp.get("/overview", security=BEARER)
def overview():
    current_admin()
    with platform().store.session() as db:
        return fleet.overview(db, platform().driver)


@bp.get("/db-servers", security=BEARER)
def db_servers():
    current_admin()
    with platform().store.session() as db:
        return {"items": fleet.db_servers(db)}
