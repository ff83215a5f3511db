"""A tenant's move between shared and dedicated PostgreSQL: an operation of kind `move`.

prepare (target placed, role, empty database, schema) → copy (publication, subscription, initial copy done) →
switch (app stopped, the source role NOLOGIN, the target equal to the source in every table's row count and
checksum, sequences set, tenant repointed, replication dropped, app started) → retire (the source kept for the grace
period, then dropped). Steps are idempotent. A failure, or an operator's rollback, runs `undo`: the tenant back on the
source as it was at the switch (writes since are lost), the target and the replication gone; once begun, an undo is
finished (a crash during it never resumes the move)."""
import time

from odoosaas.errors import PermanentError, TemporaryError
from odoosaas.pg import ops, replication
from odoosaas.reconcile import operations, steps
from odoosaas.store.models import Operation
from odoosaas.tenants import rules


def remember(ctx, **values) -> None:
    ctx.keep(params={**ctx.params, **values})


def admin(ctx, which: str) -> dict:
    """The source's or target's superuser address; a server of ours is started (or made) first."""
    return ctx.admin(ctx.params[which])[1]


def connect(ctx, which: str, tenant_db: bool = True):
    return ops.connect(admin(ctx, which), ops.names(ctx.tenant.subdomain) if tenant_db else "postgres")


def slot(ctx) -> str:
    return "move_" + ctx.operation.id.replace("-", "")[:20]


def poll(done, waiting: str) -> None:
    """Up to 10 s in this pass, then a retry."""
    for _ in range(100):
        if done():
            return
        time.sleep(0.1)
    raise TemporaryError(waiting, delay=1)


def prepare(ctx) -> None:
    t, name = ctx.tenant, ops.names(ctx.tenant.subdomain)
    if "target" not in ctx.params:
        with steps.placement_lock, ctx.platform.store.session() as db:
            server = steps.server_for(ctx.platform, db, ctx.params["target_strategy"], t.subdomain, ctx.operation.id)
            params = {**ctx.params, "target": server.id, "source": t.db_server_id, "source_strategy": t.db_strategy,
                      "source_reason": t.db_strategy_reason}
            db.get(Operation, ctx.operation.id).params = params  # with the new server's row: nothing leaks
        ctx.operation.params = params
    with connect(ctx, "source") as source:
        if source.execute("SHOW wal_level").fetchone()[0] != "logical" or replication.tables_without_key(source):
            remember(ctx, dump=True)  # no logical replication: the rows are copied at the switch, the app stopped
    with connect(ctx, "target", tenant_db=False) as target:
        ops.drop_database(target, name)  # a half-made one from an earlier attempt
        ops.ensure_role(target, name, ctx.secrets["db_password"], ctx.resources.connection_limit)
        ops.ensure_database(target, name, name)
    replication.copy_schema(admin(ctx, "source"), admin(ctx, "target"), name)


def copy(ctx) -> None:
    if ctx.params.get("dump"):
        return
    with connect(ctx, "source") as source, connect(ctx, "target") as target:
        replication.subscribe(source, target, slot(ctx), {**admin(ctx, "source"), "dbname": source.info.dbname})
        poll(lambda: replication.copying(target, slot(ctx)) == 0, "copying the tables")


def switch(ctx) -> None:
    if ctx.tenant.db_server_id != ctx.params["target"]:
        remember(ctx, stopped_at=ctx.params.get("stopped_at") or time.time())
        ctx.platform.driver.stop(ctx.tenant)
        ctx.platform.driver.route(ctx.tenant, ctx.spec(), maintenance=True)
        with connect(ctx, "source") as source, connect(ctx, "target") as target:
            replication.freeze(source, ops.names(ctx.tenant.subdomain))
            if ctx.params.get("dump"):
                replication.copy_rows(admin(ctx, "source"), admin(ctx, "target"), target, source.info.dbname)
            expected, limit = replication.fingerprint(source), ctx.platform.settings.move_switch_timeout
            poll(lambda: replication.fingerprint(target) == expected or ctx.step_age("switch") > limit, "catching up")
            if ctx.step_age("switch") > limit and replication.fingerprint(target) != expected:  # late: look again
                raise PermanentError("The copy does not match the source (row counts or checksums): not switched.")
            replication.copy_sequences(source, target)
        t, wanted = ctx.tenant, ctx.params["target_strategy"]
        strategy, why = rules.choose_strategy(t.tier, t.compliance, t.high_performance, t.expected_data_gb)
        repoint(ctx, "target", wanted, why if strategy == wanted else "moved:request")
    unreplicate(ctx)
    if ctx.step_age("switch") > ctx.platform.settings.ready_timeout:
        raise PermanentError("The app did not answer its health check on the new server.")
    restart(ctx)
    remember(ctx, switched=True, downtime_seconds=ctx.params.get("downtime_seconds")
             or round(time.time() - ctx.params["stopped_at"], 2))


def repoint(ctx, which: str, strategy: str, why: str) -> None:
    """The tenant onto the source or target server, whatever the user changed meanwhile."""
    ctx.save(force=True, db_server_id=ctx.params[which], db_strategy=strategy, db_strategy_reason=why)


def unreplicate(ctx) -> None:
    """Dropping the subscription drops its slot on the source; then the publication (and a slot a crash left)."""
    with connect(ctx, "target", tenant_db=False) as target:
        subscribed = replication.subscribed(target, slot(ctx))  # pg_subscription is one for the whole server
    if subscribed:
        with connect(ctx, "target") as target:
            replication.unsubscribe(target, slot(ctx))
    with connect(ctx, "source") as source:
        replication.unpublish(source, slot(ctx))


def restart(ctx) -> None:
    """The tenant's lifecycle steps where it now points: its role may log in, the app starts and answers."""
    if ctx.tenant.desired == "running":
        for name in rules.PLANS["running"]:
            steps.ACTIONS["running"][name](ctx)


def retire(ctx) -> None:
    """The source stays, read-only (its role may not log in), for the grace period: an operator may roll back."""
    if ctx.params.get("rollback"):
        raise PermanentError("Rolled back by an operator.")
    left = ctx.platform.settings.move_grace_seconds - ctx.step_age("retire")
    if left > 0:
        raise TemporaryError(f"the old database is kept for a rollback for {left:.0f} s more", delay=min(left, 60))
    steps.remove_database(ctx, ctx.params["source"])


def undo(ctx) -> None:
    if ctx.tenant.db_server_id == ctx.params.get("target"):
        ctx.platform.driver.stop(ctx.tenant)
        repoint(ctx, "source", ctx.params["source_strategy"], ctx.params["source_reason"])
        remember(ctx, rolled_back=True)
    if "target" in ctx.params and not ctx.params.get("target_dropped"):
        unreplicate(ctx)
        steps.remove_database(ctx, ctx.params["target"])
        remember(ctx, target_dropped=True)
    restart(ctx)


operations.register("move", *((step.__name__, step) for step in (prepare, copy, switch, retire)), undo=undo)
