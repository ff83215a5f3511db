"""Operator pages: overview charts, every tenant with filters, one tenant, database servers, moves."""
from flask import Blueprint, g, redirect, render_template, request, url_for
from pydantic import ValidationError

from odoosaas.api.schemas import AdminFilter
from odoosaas.errors import Forbidden, Invalid
from odoosaas.store.models import Tenant
from odoosaas.tenants import fleet, moves, service
from odoosaas.web.pages import flashing_conflicts, platform

bp = Blueprint("operator", __name__, url_prefix="/admin")
STATUSES = ("creating", "running", "stopping", "stopped", "starting", "migrating", "deleting", "deleted", "failed")


@bp.before_request
def operators_only():
    if not g.user.is_admin:
        raise Forbidden("These pages are for operators.")


def chart(counts: dict[str, int]) -> list[tuple]:
    """(label, value, scale, text) rows for a bar chart of counts, scaled to the largest."""
    top = max(counts.values(), default=0) or 1
    return [(label, value, top, value) for label, value in sorted(counts.items())]


@bp.get("/")
def overview():
    with platform().store.session() as db:
        data = fleet.overview(db, platform().driver)
    charts = {"Tenants by status": ("status", chart(data["tenants_by_status"])),
              "Tenants by database strategy": ("strategy", chart(data["tenants_by_strategy"])),
              "Tenants by tier": ("tier", chart(data["tenants_by_tier"])),
              "Tenants per node": ("node", chart({n["name"]: n["tenants"] for n in data["nodes"]})),
              "Shared database servers: tenants against capacity": ("servers", [
                  (s["name"], s["tenants"], s["capacity"], f"{s['tenants']} of {s['capacity']}")
                  for s in data["db_servers"] if s["kind"] == "shared"])}
    return render_template("admin_overview.html", charts=charts, mrr=platform().billing.revenue(platform()))


@bp.get("/tenants")
def tenants():
    try:
        query = AdminFilter.model_validate(request.args.to_dict())
    except ValidationError:
        raise Invalid("The search is too long.") from None
    with platform().store.session() as db:
        items = [fleet.with_owner(t) for t in service.admin_list(db, **query.model_dump())]
    return render_template("admin_tenants.html", items=items, query=query, statuses=STATUSES)


@bp.get("/tenants/<tenant_id>")
def tenant(tenant_id: str):
    with platform().store.session() as db:
        return render_template("admin_tenant.html", t=fleet.detail(db, tenant_id, platform()))


@bp.get("/db-servers")
def servers():
    with platform().store.session() as db:
        return render_template("admin_servers.html", servers=fleet.db_servers(db))


@bp.get("/migrations")
def migrations():
    with platform().store.session() as db:
        items = [{**moves.public(o), "subdomain": db.get(Tenant, o.tenant_id).subdomain} for o in moves.moves_of(db)]
    return render_template("admin_migrations.html", items=items)


@bp.post("/migrations/<move_id>/<any(approve, reject, rollback):action>")
def decide(move_id: str, action: str):
    flashing_conflicts(moves.decide, platform(), move_id, action)
    return redirect(url_for(".migrations"))
