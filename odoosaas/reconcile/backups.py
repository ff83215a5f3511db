"""Backups and restores, operations of kinds `backup` and `restore`, and the worker's sweep that takes scheduled
backups per tier and applies retention.

A backup: `database` (`pg_dump -Fc` as the tenant's own role, in the snapshot whose every table's row count and
checksum go into the manifest) → `files` (a tar of the app's files, Odoo's filestore; then the manifest) → `verify`
(each part's sha256, the dump restored into a scratch database on the same server and every table compared, Odoo's
registry loaded on it, the scratch database dropped). Each part is sealed (vault.py) before it is stored. Only a backup
whose steps are all done is `verified`; a crash redoes the step it interrupted, under the same object names.

A restore, on the tenant it lands on: `prepare` (in place: the current state backed up first; a new instance: it
runs) → `replace` (every part checked before anything is touched; the app stopped behind the maintenance page, its
database made again from the dump, its files replaced; a copy neutralised) → `start` (the tenant's running steps)."""
import dataclasses
import io
import json
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

from sqlalchemy import delete, select, update

from odoosaas import apps, vault
from odoosaas.errors import PermanentError, TemporaryError
from odoosaas.pg import ops, replication
from odoosaas.reconcile import moves, operations, steps
from odoosaas.store.models import Operation, Tenant, now

PIPE = subprocess.PIPE
PENDING = ("pending", "running")


def take(platform, tenant: Tenant, kind: str, mark: str = "", db=None) -> Operation:
    return operations.enqueue(platform, "backup", tenant.id, {"kind": kind, "mark": mark}, db=db)


def of(db, tenant_id: str) -> list[Operation]:
    """A tenant's backups, newest first."""
    return list(db.scalars(select(Operation).where(Operation.kind == "backup", Operation.tenant_id == tenant_id)
                           .order_by(Operation.created_at.desc())))


def awaited(platform, tenant: Tenant, kind: str, mark: str) -> str:
    """The status of the backup marked `mark`, taken first if there is none; retries the caller until it is finished."""
    with platform.store.session() as db:
        backup = next((b for b in of(db, tenant.id) if b.params.get("mark") == mark), None)
    backup = backup or take(platform, tenant, kind, mark)
    if backup.status in PENDING:
        raise TemporaryError(f"waiting for the {kind.replace('_', '-')} backup", delay=1)
    return backup.status


def address(ctx) -> dict:
    """The tenant's server as its superuser (started first when it is one of ours)."""
    server = ctx.server(ctx.tenant.db_server_id)
    admin = steps.server_admin(ctx.platform, server)
    if server.managed:
        ctx.platform.driver.ensure_db_server(server, admin, ctx.spec())
    return {**admin, "host": server.host, "port": server.port}


def work(ctx) -> Path:
    folder = ctx.platform.settings.data_dir / "backup-work" / ctx.operation.id
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def app_files(ctx) -> Path:
    """Odoo's filestore for the tenant's database (the sample app has none: an empty folder)."""
    return ctx.platform.driver.workdir(ctx.tenant) / "filestore" / "filestore" / ops.names(ctx.tenant.subdomain)


def put(ctx, part: str, source, process=None) -> None:
    """Seal a stream (a process's output, which must succeed) into the store; its size and sha256 are kept."""
    path, name = work(ctx) / part, f"{ctx.tenant.id}/{ctx.operation.id}/{part}"
    with open(path, "wb") as sealed:
        size, digest = vault.seal(source, sealed, vault.key(ctx.platform.settings))
    if process and process.wait():
        raise PermanentError(f"Backing up the {part} failed: {process.stderr.read().strip()[-300:]}")
    vault.make_store(ctx.platform.settings).put(name, path)
    path.unlink()
    moves.remember(ctx, parts={**ctx.params.get("parts", {}), part: {"name": name, "size": size, "sha256": digest}})


def tables(conn) -> dict:
    return {".".join(table): [int(n) for n in value] for table, value in replication.fingerprint(conn).items()}


def database(ctx) -> None:
    """The dump and the row counts from one snapshot: the app may write meanwhile."""
    db = ctx.spec().database
    with ops.connect(db, db["dbname"]) as conn, conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
        dump = replication.client("pg_dump", db, db["dbname"], "-Fc", f"--snapshot={snapshot}", run=subprocess.Popen,
                                  stdout=PIPE, stderr=PIPE)
        put(ctx, "database", dump.stdout.buffer, dump)
        moves.remember(ctx, tables=tables(conn), server_version=conn.info.server_version)


def files(ctx) -> None:
    folder = app_files(ctx)
    folder.mkdir(parents=True, exist_ok=True)
    tar = subprocess.Popen(["tar", "-C", str(folder), "-cf", "-", "."], stdout=PIPE, stderr=PIPE, text=True)
    put(ctx, "files", tar.stdout.buffer, tar)
    t, keys = ctx.tenant, ("parts", "tables", "server_version")
    manifest = {"tenant": t.id, "subdomain": t.subdomain, "app": t.app, "created_at": now().isoformat(),
                "app_version": "18.0" if t.app == "odoo" else "", **{key: ctx.params[key] for key in keys}}
    put(ctx, "manifest", io.BytesIO(json.dumps(manifest).encode()))


def fetch(ctx, backup: Operation) -> dict[str, Path]:
    """The backup's parts, downloaded, each checked against its sha256: a changed object is never used."""
    store, found = vault.make_store(ctx.platform.settings), {}
    for part, meta in backup.params["parts"].items():
        path = found[part] = work(ctx) / part
        try:
            with store.open(meta["name"]) as source, open(path, "wb") as target:
                shutil.copyfileobj(source, target, vault.CHUNK)
        except FileNotFoundError:
            raise PermanentError(f"The backup's {part} is missing from the store.") from None
        if vault.sha256(path) != meta["sha256"]:
            raise PermanentError(f"The backup's {part} does not match its checksum: it was changed or damaged.")
    return found


def feed(ctx, path: Path, argv: list[str] | None = None, db: dict | None = None) -> None:
    """A sealed part unsealed into pg_restore (as the tenant's role, into `db`) or tar, which must succeed."""
    process = replication.client("pg_restore", db, db["dbname"], "--no-owner", "--no-privileges", "--exit-on-error",
                                 run=subprocess.Popen, stdin=PIPE, stderr=PIPE) if db else subprocess.Popen(
        argv, stdin=PIPE, stdout=subprocess.DEVNULL, stderr=PIPE, text=True)
    with open(path, "rb") as sealed:
        for chunk in vault.unseal(sealed, vault.key(ctx.platform.settings)):
            process.stdin.buffer.write(chunk)
    process.stdin.close()
    if process.wait():
        raise PermanentError(f"Restoring failed: {process.stderr.read().strip()[-300:]}")


def verify(ctx) -> None:
    parts, server, scratch = fetch(ctx, ctx.operation), address(ctx), "v_" + ctx.operation.id.replace("-", "")[:20]
    spec = ctx.spec()
    spec.database = db = {**spec.database, "dbname": scratch}
    try:
        with ops.connect(server) as conn:
            ops.drop_database(conn, scratch)  # one a crash left
            ops.ensure_database(conn, scratch, spec.database["user"])
        feed(ctx, parts["database"], db=db)
        with ops.connect(db, scratch) as conn:
            found, wanted = tables(conn), ctx.params["tables"]
        if wrong := sorted(name for name in found.keys() | wanted.keys() if found.get(name) != wanted.get(name)):
            raise PermanentError(f"The restored copy differs from the manifest in {', '.join(wrong[:5])}.")
        feed(ctx, parts["files"], ["tar", "-tf", "-"])
        getattr(apps.template(ctx.tenant.app), "check", lambda spec, folder: None)(spec, work(ctx))
    finally:
        with ops.connect(server) as conn:
            ops.drop_database(conn, scratch)
        shutil.rmtree(work(ctx), ignore_errors=True)


def prepare(ctx) -> None:
    """In place: the current state is backed up first, so the restore can be undone; a copy: the new instance runs."""
    if ctx.params["target"] == "in_place" and awaited(ctx.platform, ctx.tenant, "pre_restore", ctx.operation.id) != "done":
        raise PermanentError("The current state could not be backed up first, so nothing was restored.")
    if ctx.params["target"] == "new_instance" and ctx.tenant.status != "running":
        if ctx.tenant.status in ("failed", "deleted", "deleting"):
            raise PermanentError("The new instance could not be made.")
        raise TemporaryError("waiting for the new instance to run", delay=1)


def checked(ctx) -> dict[str, Path]:
    """The parts of the backup to restore; one found damaged is marked failed, never offered again."""
    with ctx.platform.store.session() as db:
        backup = db.get(Operation, ctx.params["backup_id"])
    if backup is None or backup.status != "done":
        raise PermanentError("Only a verified backup can be restored; this one is gone or failed.")
    try:
        return fetch(ctx, backup)
    except PermanentError as exc:
        with ctx.platform.store.session() as db:
            db.execute(update(Operation).where(Operation.id == backup.id).values(status="failed", error=str(exc)))
        raise


def replace(ctx) -> None:
    parts = checked(ctx)
    ctx.save(status="maintenance", status_detail="Restoring a backup.")
    ctx.platform.driver.stop(ctx.tenant)
    ctx.platform.driver.route(ctx.tenant, ctx.spec(), maintenance=True)
    spec, name = ctx.spec(), ops.names(ctx.tenant.subdomain)
    with ops.connect(address(ctx)) as conn:
        ops.drop_database(conn, name)
        ops.ensure_database(conn, name, name)
    feed(ctx, parts["database"], db=spec.database)
    if not ctx.params.get("database_only"):
        shutil.rmtree(app_files(ctx), ignore_errors=True)
        app_files(ctx).mkdir(parents=True)
        feed(ctx, parts["files"], ["tar", "-C", str(app_files(ctx)), "-xf", "-"])
    if ctx.params["target"] == "new_instance":
        getattr(apps.template(ctx.tenant.app), "neutralize", lambda spec, folder: None)(spec, work(ctx))
    shutil.rmtree(work(ctx), ignore_errors=True)


def start(ctx) -> None:
    moves.restart(ctx)
    ctx.save(status="running", status_detail="")


def undo(ctx, message: str) -> None:
    """A restore that stopped the app and failed: the tenant says so (`start` runs it again on what is there)."""
    if ctx.tenant.status == "maintenance":
        ctx.save(status="failed", status_detail=f"The restore failed: {message}")


def before_delete(ctx) -> None:
    """A deleted instance's last backup is kept for a while; one not taken in time does not hold the deletion up."""
    if ctx.tenant.db_server_id and ctx.tenant.admin_set and hasattr(ctx.platform.driver, "workdir") and \
            ctx.step_age("backup") < ctx.platform.settings.ready_timeout:
        awaited(ctx.platform, ctx.tenant, "pre_delete", f"delete:{ctx.generation}")


def expired(backups: list, keep: dict) -> list:
    """Finished backups (newest first) that retention removes: it keeps the newest verified one of each of the last
    `daily` days, `weekly` weeks and `monthly` months, and up to `daily` failed ones newer than the newest verified."""
    good = [b for b in backups if b.status == "done"]
    failed = [b for b in backups if b.status == "failed" and (not good or b.created_at > good[0].created_at)]
    kept = {b.id for b in backups if b.status in PENDING} | {b.id for b in failed[:keep["daily"]]}
    for period, count in (("%Y-%m-%d", keep["daily"]), ("%G-%V", keep["weekly"]), ("%Y-%m", keep["monthly"])):
        newest: dict = {}
        for backup in good:
            newest.setdefault(backup.created_at.strftime(period), backup.id)
        kept.update(list(newest.values())[:count])
    return [b for b in backups if b.id not in kept]


def retention(tenant: Tenant, backups: list, settings) -> list:
    """What goes: by the rule above, or for a deleted instance all but its newest verified one, all after a while."""
    if tenant.status != "deleted":
        return expired(backups, settings.backup_keep)
    finished = [b for b in backups if b.status not in PENDING]
    last = [b for b in finished if b.status == "done"][:1]
    gone = (now() - tenant.updated_at).days >= settings.backup_keep_deleted_days
    return [b for b in finished if gone or b not in last]


def forget(platform, backups: list) -> None:
    """The objects first: a crash in between leaves a row whose removal is tried again."""
    store = vault.make_store(platform.settings)
    for backup in backups:
        for part in backup.params.get("parts", {}).values():
            store.delete(part["name"])
        with platform.store.session() as db:
            db.execute(delete(Operation).where(Operation.id == backup.id))


def sweep(platform) -> None:
    """Scheduled backups of running instances, per tier; then retention."""
    every, taken = platform.settings.backup_every, defaultdict(list)
    with platform.store.session() as db:
        for backup in db.scalars(select(Operation).where(Operation.kind == "backup").order_by(Operation.created_at.desc())):
            taken[backup.tenant_id].append(backup)
        tenants = db.scalars(select(Tenant).where((Tenant.status == "running") | Tenant.id.in_(list(taken)))).all()
    for tenant in tenants:
        last = taken[tenant.id][0].created_at if taken[tenant.id] else None
        if tenant.status == "running" and every.get(tenant.tier) and (
                last is None or (now() - last).total_seconds() >= every[tenant.tier]):
            take(platform, tenant, "scheduled")
        forget(platform, retention(tenant, taken[tenant.id], platform.settings))


operations.register("backup", ("database", database), ("files", files), ("verify", verify))
operations.register("restore", ("prepare", prepare), ("replace", replace), ("start", start), undo=undo)
