"""The caller's own instances (TM-1..8)."""
from flask_openapi3 import APIBlueprint, Tag

from odoosaas.api import BEARER, BODY, SIGNED_IN, current_user, fails, platform, schemas
from odoosaas.apps import odoo
from odoosaas.reconcile import operations
from odoosaas.tenants import domains, moves, service

bp = APIBlueprint("tenants", __name__, url_prefix="/api/v1", abp_tags=[Tag(name="tenants")])
MINE = {**SIGNED_IN, **fails(404)}  # an unknown id, or another user's instance
CHANGE = {202: schemas.TenantAnswer, **BODY, **MINE, **fails(409)}  # 409: not in this status


@bp.get("/subdomains/<name>", responses={200: schemas.Availability, **fails(404)})  # 404: a name with "/"
def subdomain(path: schemas.SubdomainPath):
    with platform().store.session() as db:
        return service.subdomain_availability(db, path.name)


@bp.get("/apps/odoo/modules", security=BEARER, responses={200: schemas.Items, **SIGNED_IN})
def odoo_modules():
    """The Odoo apps an instance may ask for (signed-in users: only they create instances)."""
    return {"items": odoo.available_apps(platform().settings.odoo_bin)}


@bp.post("/tenants", security=BEARER, responses={202: schemas.TenantAnswer, **BODY, **SIGNED_IN, **fails(409)})
def create(body: schemas.TenantRequest):
    return {"tenant": service.public(service.create(platform(), current_user(), body))}, 202


@bp.get("/tenants", security=BEARER, responses={200: schemas.Items, **SIGNED_IN})
def list_tenants():
    with platform().store.session() as db:
        return {"items": [service.public(t) for t in service.list_owned(db, current_user())]}


@bp.get("/tenants/<tenant_id>", security=BEARER, responses={200: schemas.TenantAnswer, **MINE})
def read(path: schemas.TenantPath):
    with platform().store.session() as db:
        return {"tenant": service.public(service.owned(db, current_user(), path.tenant_id))}


@bp.patch("/tenants/<tenant_id>", security=BEARER, responses=CHANGE)
def change_tier(path: schemas.TenantPath, body: schemas.TierChange):
    """Another tier; 409 `needs_migration` when it needs the other database strategy and the instance is not running."""
    return {"tenant": service.public(service.change_tier(platform(), current_user(), path.tenant_id, body.tier))}, 202


@bp.post("/tenants/<tenant_id>/migration-requests", security=BEARER, responses={**CHANGE, 202: schemas.RequestAnswer})
def ask_for_move(path: schemas.TenantPath, body: schemas.MoveRequest):
    """Ask an operator to move the instance to the other database strategy (TM-7)."""
    operation = moves.ask(platform(), current_user(), path.tenant_id, body.target_strategy, body.reason)
    return {"request": moves.public(operation)}, 202


@bp.get("/tenants/<tenant_id>/migration-requests", security=BEARER, responses={200: schemas.Items, **MINE})
def move_requests(path: schemas.TenantPath):
    return {"items": moves.asked(platform(), current_user(), path.tenant_id)}


def change(action: str):
    """The route that asks for `action` (delete, stop, start) on the caller's instance."""
    def view(path: schemas.TenantPath):
        return {"tenant": service.public(service.change(platform(), current_user(), path.tenant_id, action))}, 202
    view.__name__ = action  # the endpoint's and the operation's name
    return view


bp.delete("/tenants/<tenant_id>", security=BEARER, responses=CHANGE)(change("delete"))
bp.post("/tenants/<tenant_id>/stop", security=BEARER, responses=CHANGE)(change("stop"))
bp.post("/tenants/<tenant_id>/start", security=BEARER, responses=CHANGE)(change("start"))


@bp.post("/tenants/<tenant_id>/admin-password", security=BEARER, responses=CHANGE)
def admin_password(path: schemas.TenantPath, body: schemas.AdminPassword):
    tenant = service.set_admin_password(platform(), current_user(), path.tenant_id, body.password)
    return {"tenant": service.public(tenant)}, 202


@bp.get("/tenants/<tenant_id>/operations", security=BEARER, responses={200: schemas.Items, **MINE})
def list_operations(path: schemas.TenantPath):
    with platform().store.session() as db:
        return {"items": [operations.public(o) for o in service.operations_of(db, current_user(), path.tenant_id)]}


@bp.get("/tenants/<tenant_id>/modules", security=BEARER, responses={200: schemas.Items, **MINE, **fails(409)})
def list_modules(path: schemas.TenantPath):
    return {"items": service.installed_modules(platform(), current_user(), path.tenant_id)}


@bp.post("/tenants/<tenant_id>/modules", security=BEARER, responses={**CHANGE, 202: schemas.OperationAnswer})
def install_modules(path: schemas.TenantPath, body: schemas.ModuleNames):
    operation = service.install_modules(platform(), current_user(), path.tenant_id, body.names)
    return {"operation": operations.public(operation)}, 202


@bp.get("/tenants/<tenant_id>/domains", security=BEARER, responses={200: schemas.Items, **MINE})
def list_domains(path: schemas.TenantPath):
    return {"items": domains.listed(platform(), current_user(), path.tenant_id)}


@bp.post("/tenants/<tenant_id>/domains", security=BEARER,
         responses={201: schemas.DomainAnswer, **BODY, **MINE, **fails(409)})
def claim_domain(path: schemas.TenantPath, body: schemas.DomainRequest):
    """Claim a domain (FE-5): routed once its TXT record (in the answer's `records`) proves control."""
    return {"domain": domains.claim(platform(), current_user(), path.tenant_id, body.name)}, 201


@bp.delete("/tenants/<tenant_id>/domains/<name>", security=BEARER, responses={204: None, **MINE, **fails(409)})
def remove_domain(path: schemas.DomainPath):
    domains.remove(platform(), current_user(), path.tenant_id, path.name)
    return "", 204
