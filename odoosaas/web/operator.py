"""Operator pages: overview charts and database servers, every tenant with filters, one tenant, moves.

They show what the operator API answers (its views are plain functions) behind the same operators-only check."""
from flask import Blueprint, redirect, render_template, request, url_for

from odoosaas.api import admin as answers, schemas
from odoosaas.tenants import moves
from odoosaas.web.pages import flashing_conflicts, platform

bp = Blueprint("operator", __name__, url_prefix="/admin")
bp.before_request(answers.operators_only)  # the page guard has set the signed-in user
STATUSES = ("creating", "running", "stopping", "stopped", "starting", "migrating", "deleting", "deleted", "failed")


def chart(counts: dict[str, int]) -> list[tuple]:
    """(label, value, scale, text) rows for a bar chart of counts, scaled to the largest."""
    top = max(counts.values(), default=0) or 1
    return [(label, value, top, value) for label, value in sorted(counts.items())]


@bp.get("/")
def overview():
    data = answers.overview()
    charts = {"Tenants by status": ("status", chart(data["tenants_by_status"])),
              "Tenants by database strategy": ("strategy", chart(data["tenants_by_strategy"])),
              "Tenants by tier": ("tier", chart(data["tenants_by_tier"])),
              "Tenants per node": ("node", chart({n["name"]: n["tenants"] for n in data["nodes"]})),
              "Shared database servers: tenants against capacity": ("servers", [
                  (s["name"], s["tenants"], s["capacity"], f"{s['tenants']} of {s['capacity']}")
                  for s in data["db_servers"] if s["kind"] == "shared"])}
    return render_template("admin_overview.html", charts=charts, servers=data["db_servers"],
                           mrr=platform().billing.revenue(platform()))


@bp.get("/tenants")
def tenants():
    query = schemas.AdminFilter(**request.args.to_dict() | {"q": request.args.get("q", "")[:100]})  # its longest search
    return render_template("admin_tenants.html", **answers.tenants(query), query=query, statuses=STATUSES)


@bp.get("/tenants/<tenant_id>")
def tenant(tenant_id: str):
    return render_template("admin_tenant.html", t=answers.tenant(schemas.TenantPath(tenant_id=tenant_id))["tenant"])


@bp.get("/migrations")
def migrations():
    return render_template("admin_migrations.html", **answers.migrations(answers.MoveFilter()))


@bp.post("/migrations/<move_id>/<any(approve, reject, rollback):action>")
def decide(move_id: str, action: str):
    flashing_conflicts(moves.decide, platform(), move_id, action)
    return redirect(url_for(".migrations"))
