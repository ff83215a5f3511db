"""Tenant operations shared by the API and the dashboard: ask, read, change desired state."""
import contextlib
import secrets

import psycopg
from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError

from odoosaas import apps
from odoosaas.errors import Conflict, NotFound, TemporaryError
from odoosaas.reconcile import operations
from odoosaas.store.models import Domain, Event, Operation, Tenant, User, now
from odoosaas.tenants import moves, rules

# desired state and the status shown while the reconciler works towards it
TRANSITIONS = {"stop": ("stopped", "stopping"), "start": ("running", "starting"), "delete": ("deleted", "deleting")}
PUBLIC_FIELDS = ("id", "subdomain", "url", "app", "tier", "status", "status_detail", "db_strategy",
                 "db_strategy_reason", "admin_email", "node", "compliance", "resources", "desired")  # shown as stored
SUSPENDED = "Suspended: an invoice is unpaid. Add a payment method to resume it; its data is kept."


def create(platform, user: User, request) -> Tenant:
    """Record a new tenant (status `creating`); the reconciler makes it real."""
    app = apps.resolve(request.app, platform.settings)
    strategy, reason = rules.choose_strategy(request.tier, request.compliance, request.high_performance,
                                             request.expected_data_gb)
    secret_values = {"admin_password": request.admin_password, "db_password": secrets.token_urlsafe(24)}
    tenant = Tenant(owner_id=user.id, subdomain=request.subdomain, app=app, tier=request.tier, db_strategy=strategy,
                    resources=rules.resources(request.tier, platform.settings.tiers), db_strategy_reason=reason,
                    compliance=sorted(request.compliance), high_performance=request.high_performance,
                    expected_data_gb=request.expected_data_gb, admin_email=request.admin_email,
                    url=planned_url(platform.settings, request.subdomain), secrets=platform.box.seal(secret_values),
                    progress=pending_steps(rules.PLANS["running"]),
                    modules=apps.check_modules(app, request.modules, platform.settings))
    try:
        with platform.store.session() as db:
            # lock the owner's row first: concurrent requests count and insert one at a time (both stores)
            db.execute(update(User).where(User.id == user.id).values(email=User.email))
            platform.billing.check_create(db, user, request.tier)
            db.add(tenant)
            db.flush()
            db.refresh(tenant)  # loads owner and server for the response
            record(db, tenant, "requested", f"{request.tier} {app} instance requested ({strategy} database, {reason})")
    except IntegrityError:
        raise Conflict(f"The subdomain {request.subdomain!r} is taken.", "subdomain_taken") from None
    platform.wake()
    return tenant


def planned_url(settings, subdomain: str) -> str:
    return f"{settings.public_scheme}://{subdomain}.{settings.base_domain}"


def pending_steps(names) -> list[dict]:
    """The progress of a tenant's plan or an operation's steps, none started yet."""
    return [{"name": name, "state": "pending", "started_at": None, "finished_at": None, "detail": ""} for name in names]


def progress(steps: list[dict] | None) -> dict:
    """The API's view of a tenant's or an operation's progress: the current step, how many are done, the steps."""
    steps = steps or []
    return {"step": next((step["name"] for step in steps if step["state"] != "done"), ""),
            "done": sum(step["state"] == "done" for step in steps), "total": len(steps), "steps": steps}


def subdomain_availability(db, name: str) -> dict:
    problem = rules.subdomain_problem(name)
    if problem is None and db.scalar(select(Tenant.id).where(Tenant.subdomain == name, Tenant.status != "deleted")):
        problem = "is taken"
    return {"name": name, "available": problem is None, "reason": problem or ""}


def owned(db, user: User, tenant_id: str) -> Tenant:
    """The caller's tenant; anyone else's is a 404, as is a deleted one."""
    tenant = db.get(Tenant, tenant_id)
    if tenant is None or tenant.owner_id != user.id or tenant.status == "deleted":
        raise NotFound("No such instance.")
    return tenant


@contextlib.contextmanager
def changing(platform, user: User, tenant_id: str, deleting_ok: bool = False):
    """A unit of work on the caller's tenant (see `owned`), yielding (db, tenant); once committed, the worker wakes.
    One being deleted is a 409 unless `deleting_ok`."""
    with platform.store.session() as db:
        tenant = owned(db, user, tenant_id)
        if tenant.desired == "deleted" and not deleting_ok:
            raise Conflict("This instance is being deleted.", "invalid_state")
        yield db, tenant
    platform.wake()


def list_owned(db, user: User) -> list[Tenant]:
    return list(db.scalars(select(Tenant).where(Tenant.owner_id == user.id, Tenant.status != "deleted")
                           .order_by(Tenant.created_at)))


def change(platform, user: User, tenant_id: str, action: str) -> Tenant:
    """Stop, start or delete: a new desired state and generation. Deleting twice is idempotent."""
    desired, status = TRANSITIONS[action]
    with changing(platform, user, tenant_id, deleting_ok=action == "delete") as (db, tenant):
        moves.refuse_if_moving(db, tenant.id)
        if tenant.desired == "suspended" and action != "delete":
            raise Conflict(SUSPENDED, "suspended")
        if tenant.desired != desired or tenant.status == "failed":  # on a failed tenant, start retries
            aim(tenant, desired, status)
            record(db, tenant, action, f"{action} requested")
            if action == "delete":  # its domains are free for others to claim
                db.execute(delete(Domain).where(Domain.tenant_id == tenant.id))
        elif action != "delete":
            raise Conflict(f"This instance is already {tenant.status}.", "invalid_state")
    return tenant


def aim(tenant: Tenant, desired: str, status: str, detail: str = "") -> None:
    """A new desired state: a new generation the reconciler drives from its first step."""
    tenant.desired, tenant.status, tenant.status_detail = desired, status, detail
    tenant.progress = pending_steps(rules.PLANS[desired])
    tenant.generation, tenant.attempts, tenant.next_attempt_at = tenant.generation + 1, 0, now()


def suspend(platform, owner_id: str, unpaid: bool) -> None:
    """Billing's verdict on an owner: running instances stop as `suspended` while an invoice is unpaid, and
    run again once it is paid."""
    now_desired, then, status = ("running", "suspended", "stopping") if unpaid else ("suspended", "running", "starting")
    with platform.store.session() as db:
        for tenant in db.scalars(select(Tenant).where(Tenant.owner_id == owner_id, Tenant.desired == now_desired)):
            aim(tenant, then, status, SUSPENDED if unpaid else "")
            record(db, tenant, "billing", "suspended: an invoice is unpaid" if unpaid else "resumed: invoices paid")
    platform.wake()


def set_admin_password(platform, user: User, tenant_id: str, password: str) -> Tenant:
    """A new admin password (TM-3): the admin step runs again, now if running, else at the next start."""
    with changing(platform, user, tenant_id) as (db, tenant):
        tenant.secrets = platform.box.seal({**platform.box.open(tenant.secrets), "admin_password": password})
        tenant.admin_set = False
        rerun(db, tenant, "setting the admin password")
        record(db, tenant, "admin_password", "admin password change requested")
    return tenant


def change_tier(platform, user: User, tenant_id: str, tier: str) -> Tenant:
    """Another tier (FE-2): its resources from the next pass (a running app restarts with them); when its
    rules want the other database strategy, a move there starts too."""
    with changing(platform, user, tenant_id) as (db, tenant):
        moves.refuse_if_moving(db, tenant.id)
        strategy, _ = rules.choose_strategy(tier, tenant.compliance, tenant.high_performance, tenant.expected_data_gb)
        if strategy != tenant.db_strategy and tenant.status != "running":
            raise Conflict(f"The {tier} tier needs a {strategy} database: start the instance first.", "needs_migration")
        tenant.tier, tenant.resources = tier, rules.resources(tier, platform.settings.tiers)
        record(db, tenant, "tier", f"tier changed to {tier}")
        rerun(db, tenant, f"applying the {tier} tier")
        if strategy != tenant.db_strategy:
            moves.start(platform, user, tenant.id, strategy, f"tier:{tier}", db)
    return tenant


def rerun(db, tenant: Tenant, why: str) -> None:
    """Run a running tenant's plan again (a stopped one gets it at its next start)."""
    if tenant.desired == "running" and tenant.status != "failed":
        aim(tenant, "running", tenant.status, why)


def install_modules(platform, user: User, tenant_id: str, names: list[str]) -> Operation:
    """Queue an install of Odoo apps (FE-3) on a running instance."""
    with changing(platform, user, tenant_id) as (db, tenant):
        names = apps.check_modules(tenant.app, names, platform.settings)  # the request's model refused none at all
        if tenant.desired != "running":
            raise Conflict("Start the instance before installing apps.", "invalid_state")
        moves.refuse_if_moving(db, tenant.id)
        return operations.enqueue(platform, "install_modules", tenant.id, {"names": names}, requested_by=user.id, db=db)


def installed_modules(platform, user: User, tenant_id: str) -> list[dict]:
    """What the instance itself says is installed (read from its own database with its own role)."""
    from odoosaas.reconcile.context import Context
    with platform.store.session() as db:
        tenant = owned(db, user, tenant_id)
    if tenant.app != "odoo" or not tenant.db_server_id:
        return []
    try:
        return apps.template("odoo").installed_modules(Context(platform, tenant).spec())
    except (psycopg.Error, TemporaryError):
        raise Conflict("The instance's database is not reachable now.", "invalid_state") from None


def operations_of(db, user: User, tenant_id: str) -> list[Operation]:
    owned(db, user, tenant_id)
    return list(db.scalars(select(Operation).filter_by(tenant_id=tenant_id).order_by(Operation.created_at.desc())))


def record(db, tenant: Tenant, kind: str, message: str) -> None:
    db.add(Event(tenant_id=tenant.id, kind=kind, message=message))


def admin_list(db, q: str = "", **filters: str) -> list[Tenant]:
    """Every tenant, newest first; the filters given (status, db_strategy, tier) must match, `q` may."""
    query = select(Tenant).filter_by(**{name: value for name, value in filters.items() if value})
    query = query.join(Tenant.owner).order_by(Tenant.created_at.desc())  # after filter_by: it filters the last join
    if q:  # any case; % and _ match themselves
        query = query.where(or_(*(column.icontains(q, autoescape=True) for column in (Tenant.subdomain, User.email))))
    return list(db.scalars(query).unique())


def public(tenant: Tenant) -> dict:
    """The API's tenant shape; secrets never leave the store."""
    return {**{name: getattr(tenant, name) for name in PUBLIC_FIELDS}, "progress": progress(tenant.progress),
            "db_server": tenant.db_server.name if tenant.db_server else None,
            "routing": "direct port" if tenant.url.startswith("http://127.0.0.1:") else "subdomain",
            "created_at": tenant.created_at.isoformat(), "updated_at": tenant.updated_at.isoformat()}
