"""The customer's instances: list, create with live hints, the live instance page, stop/start/delete.

What a page shows is what the tenants API answers (its views are plain functions; the page guard has set the
signed-in user they ask for)."""
from flask import Blueprint, flash, g, get_template_attribute, redirect, render_template, request, url_for

from odoosaas.api import backups as backup_views, schemas, tenants as answers
from odoosaas.tenants import backups, domains, moves, rules, service
from odoosaas.web.pages import fields, flashing_conflicts, platform, submit

bp = Blueprint("instances", __name__, url_prefix="/instances")


@bp.get("/")
def index():
    return render_template("instances.html", **answers.list_tenants())


def odoo_apps() -> list[dict]:
    return answers.odoo_modules()["items"]


@bp.get("/new")
def new():
    """The form; the plan's fields fetch it again (htmx) for the strategy they get."""
    return render_template("new.html", form=request.form, strategy=planned(request.args), odoo_apps=odoo_apps())


@bp.post("/new")
def create():
    def make(body: schemas.TenantRequest):
        return redirect(url_for(".show", tenant_id=service.create(platform(), g.user, body).id))
    data = {**fields(), "compliance": request.form.getlist("compliance"), "modules": request.form.getlist("modules"),
            "high_performance": "high_performance" in request.form}
    return submit(schemas.TenantRequest, data, make, "new.html", strategy=planned(request.form), odoo_apps=odoo_apps())


def planned(values) -> tuple[str, str]:
    """The database strategy the plan chosen so far gets (a hint; the form is checked on submit)."""
    tier = values.get("tier") if values.get("tier") in rules.TIER_NAMES else "basic"
    compliance = [name for name in values.getlist("compliance") if name in rules.COMPLIANCE]
    volume = values.get("expected_data_gb", 0.0, type=float)  # not a number: 0
    return rules.choose_strategy(tier, compliance, "high_performance" in values, volume)


@bp.get("/new/subdomain")
def availability():
    answer = answers.subdomain(schemas.SubdomainPath(name=request.args.get("subdomain", "")[:100]))
    return get_template_attribute("macros.html", "availability")(answer)


@bp.get("/<tenant_id>")
def show(tenant_id: str, errors: dict | None = None, status: int = 200):
    return render_template("instance.html", errors=errors or {}, **show_context(tenant_id)), status


@bp.post("/<tenant_id>/modules")
def install(tenant_id: str):
    names = request.form.getlist("names")
    return act(tenant_id, schemas.ModuleNames, service.install_modules, f"Installing {', '.join(names)}.",
               {"names": names})


def show_context(tenant_id: str) -> dict:
    """What the instance page shows: the tenant, its domains, its move requests, and Odoo's apps while it runs."""
    path = schemas.TenantPath(tenant_id=tenant_id)
    t = answers.read(path)["tenant"]
    odoo = t["app"] == "odoo" and t["status"] == "running"
    return {"t": t, "domains": answers.list_domains(path)["items"], "moves": answers.move_requests(path)["items"],
            "backups": backup_views.list_backups(path)["items"],
            "installed": {m["name"]: m["state"] for m in answers.list_modules(path)["items"]} if odoo else {},
            "odoo_apps": odoo_apps() if odoo else []}


def act(tenant_id: str, model, action, done: str, data: dict | None = None):
    """A form of the instance page: run `action` with the checked body, say `done`, show the page again."""
    def run(body):
        action(platform(), g.user, tenant_id, *body.model_dump().values())
        flash(done)
        return redirect(url_for(".show", tenant_id=tenant_id))
    return submit(model, fields() if data is None else data, run, "instance.html", **show_context(tenant_id))


# The instance page's forms (but apps): the API's model of the form, what it does, what the page then says.
FORMS = {"admin-password": (schemas.AdminPassword, service.set_admin_password, "The new admin password is being set."),
         "tier": (schemas.TierChange, service.change_tier, "The new tier is being applied."),
         "move": (schemas.MoveRequest, moves.ask, "Your request is waiting for an operator."),
         "domains": (schemas.DomainRequest, domains.claim,
                     "Create the records shown; it is served once they are seen."),
         "backups": (schemas.Body, backups.take, "A backup is being taken; it is verified by restoring it.")}


@bp.post("/<tenant_id>/<any('admin-password', tier, move, domains, backups):form_name>")
def form(tenant_id: str, form_name: str):
    return act(tenant_id, *FORMS[form_name])


@bp.post("/<tenant_id>/domains/<name>/delete")
def remove_domain(tenant_id: str, name: str):
    domains.remove(platform(), g.user, tenant_id, name)
    flash(f"{name} is no longer routed to this instance.")
    return redirect(url_for(".show", tenant_id=tenant_id))


@bp.post("/<tenant_id>/backups/<backup_id>/restore")
def restore(tenant_id: str, backup_id: str):
    return act(tenant_id, backup_views.RestoreRequest, lambda *args: backups.restore(*args[:3], backup_id, *args[3:]),
               "The backup is being restored; the current state is backed up first.")


@bp.post("/<tenant_id>/<any(stop, start):action>")
def change(tenant_id: str, action: str):
    flashing_conflicts(service.change, platform(), g.user, tenant_id, action)
    return redirect(url_for(".show", tenant_id=tenant_id))


@bp.post("/<tenant_id>/delete")
def delete(tenant_id: str):
    subdomain = answers.read(schemas.TenantPath(tenant_id=tenant_id))["tenant"]["subdomain"]
    if request.form.get("confirm", "").strip() != subdomain:
        return show(tenant_id, {"confirm": f"Type {subdomain} to confirm."}, 400)
    service.change(platform(), g.user, tenant_id, "delete")
    flash(f"{subdomain} is being deleted.")
    return redirect(url_for(".index"))
