"""The `ensure_*` steps: each idempotent, safe to run again after a crash at any point."""
import threading
import time

from sqlalchemy import func, select

from odoosaas import apps
from odoosaas.errors import PermanentError, TemporaryError
from odoosaas.pg import ops
from odoosaas.reconcile import backups
from odoosaas.store.models import DbServer, Tenant
from odoosaas.tenants import rules

placement_lock = threading.Lock()  # one placement at a time in this process; rows are locked too


def new_server(platform, db, name: str, kind: str, capacity: int, subdomain: str = "") -> DbServer:
    """A managed server row: its address and superuser password are kept before it exists."""
    host, port = platform.driver.server_address(name, kind, subdomain)
    admin = platform.box.seal({"user": "odoosaas", "password": ops.new_password()})
    server = DbServer(name=name, kind=kind, host=host, port=port, capacity=capacity, secret=admin)
    db.add(server)
    db.flush()
    return server


def server_for(platform, db, strategy: str, subdomain: str, unique: str) -> DbServer:
    """A new server of its own (`unique` names it), or the least-loaded shared one with room, or a new shared one."""
    if strategy == "dedicated":
        return new_server(platform, db, f"ded-{subdomain}-{unique[:6]}", "dedicated", 1, subdomain)
    servers = {s.name: s for s in db.scalars(select(DbServer).where(
        DbServer.kind == "shared", DbServer.status != "deleted").with_for_update())}
    counts = dict(db.execute(select(Tenant.db_server_id, func.count()).where(Tenant.status != "deleted")
                             .group_by(Tenant.db_server_id)).all())
    chosen = rules.place({name: (counts.get(s.id, 0), s.capacity) for name, s in servers.items()})
    if chosen:
        return servers[chosen]
    total = db.scalar(select(func.count()).select_from(DbServer).where(DbServer.kind == "shared"))
    return new_server(platform, db, f"shared-{total + 1}", "shared", platform.settings.shared_capacity)


def ensure_database(ctx) -> None:
    if not ctx.tenant.db_server_id:  # placed once, its row locked: two workers never place it twice
        with placement_lock, ctx.platform.store.session() as db:
            t = db.get(Tenant, ctx.tenant.id, with_for_update=True)
            t.db_server_id = t.db_server_id or server_for(ctx.platform, db, t.db_strategy, t.subdomain, t.id).id
        ctx.tenant.db_server_id = t.db_server_id
    server, address = ctx.admin(ctx.tenant.db_server_id)
    name = ops.names(ctx.tenant.subdomain)
    clone = ctx.platform.settings.driver == "local" and server.kind == "shared"  # a template pays off there
    with ops.connect(address) as conn:
        ops.ensure_role(conn, name, ctx.secrets["db_password"], ctx.resources.connection_limit)
        apps.template(ctx.tenant.app).create_database(conn, address, name, ctx.spec(), clone)


def ensure_admin_credentials(ctx) -> None:
    """Once per password the owner chose: a password changed inside the app is never set back."""
    if not ctx.tenant.admin_set:
        apps.template(ctx.tenant.app).set_admin(ctx.spec())
        ctx.save(admin_set=True)


def ensure_routing(ctx) -> None:
    spec = ctx.spec()
    getattr(apps.template(ctx.tenant.app), "set_url", lambda spec: None)(spec)
    ctx.save(url=ctx.platform.driver.route(ctx.tenant, spec))


def ensure_ready(ctx, poll: float = 0.1) -> None:
    """Poll the health check for a while in this pass (an app answers within seconds), then back off."""
    patience = min(10.0, ctx.platform.settings.ready_timeout / 6)
    deadline, spec = time.monotonic() + patience, ctx.spec()
    while not (observed := ctx.platform.driver.observe(ctx.tenant, spec)).ready:
        if ctx.step_age("ready") > ctx.platform.settings.ready_timeout:
            raise PermanentError(f"The app did not answer its health check in time ({observed.detail}).")
        if time.monotonic() > deadline:
            raise TemporaryError(observed.detail or "waiting for the app to answer", delay=1)
        time.sleep(poll)
    ctx.save(node=observed.node)


def remove_database(ctx, server_id: str | None = None) -> None:
    """The tenant's database and role on its server (or `server_id`), or the whole server when it is a dedicated one."""
    if not (server_id := server_id or ctx.tenant.db_server_id):
        return
    server = ctx.server(server_id)
    if server.kind == "dedicated" and server.managed:
        ctx.platform.driver.delete_db_server(server)
        ctx.mark_server(server, "deleted")
        return
    name = ops.names(ctx.tenant.subdomain)
    with ops.connect(ops.superuser(ctx.platform.box, server)) as conn:
        ops.drop(conn, name, name)


billing = lambda ctx: ctx.platform.billing.reconcile(ctx)  # noqa: E731 (the subscription)
ACTIONS = {  # the runtime steps are the driver's verbs
    "running": {"billing": billing, "database": ensure_database,
                "runtime": lambda ctx: ctx.platform.driver.apply(ctx.tenant, ctx.spec()),
                "admin_credentials": ensure_admin_credentials, "routing": ensure_routing, "ready": ensure_ready},
    "stopped": {"runtime": lambda ctx: ctx.platform.driver.stop(ctx.tenant)},
    "deleted": {"backup": lambda ctx: backups.before_delete(ctx), "database": remove_database, "billing": billing,
                "runtime": lambda ctx: ctx.platform.driver.delete(ctx.tenant)},
}
ACTIONS["suspended"] = ACTIONS["stopped"]
