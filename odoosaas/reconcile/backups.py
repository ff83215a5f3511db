"""Backups and restores, operations of kinds `backup` and `restore`, and the worker's sweep that takes scheduled
backups per tier and applies retention.

A backup: `dump` (`pg_dump -Fc` as the tenant's own role, in the snapshot whose every table's row count and checksum
go into the manifest; a tar of the app's files, Odoo's filestore; the manifest) → `verify` (each part's sha256, then
restored into a scratch database on the same server, every table compared, Odoo's registry loaded on it, the scratch
database dropped). Each part is sealed (vault.py) before it is stored. A backup is `verified` only when both steps are
done; a crash redoes the step it interrupted, under the same object names.

A restore, on the tenant it lands on: `prepare` (in place: the current state backed up first; a new instance: it
runs) → `replace` (every part checked before anything is touched; the app stopped behind the maintenance page, its
database made again from the dump, its files replaced; a copy neutralised) → `start` (the tenant's running steps)."""
import hashlib
import json
import shutil
import subprocess
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

from cryptography.exceptions import InvalidTag
from sqlalchemy import delete, select, update

from odoosaas import apps, vault
from odoosaas.errors import PermanentError, TemporaryError
from odoosaas.pg import ops, replication
from odoosaas.reconcile import moves, operations
from odoosaas.store.models import Operation, Tenant, now

PENDING = ("pending", "running")


def take(platform, tenant: Tenant, kind: str, mark: str = "", db=None) -> Operation:
    return operations.enqueue(platform, "backup", tenant.id, {"kind": kind, "mark": mark}, db=db)


def of(db, tenant_id: str) -> list[Operation]:
    """A tenant's backups, newest first."""
    return list(db.scalars(select(Operation).where(Operation.kind == "backup", Operation.tenant_id == tenant_id)
                           .order_by(Operation.created_at.desc())))


def awaited(platform, tenant: Tenant, kind: str, mark: str) -> str:
    """The outcome of the backup marked `mark`, taken first if there is none; the caller retries until it is known."""
    with platform.store.session() as db:
        backup = next((b for b in of(db, tenant.id) if b.params["mark"] == mark), None)
    if (backup or take(platform, tenant, kind, mark)).status in PENDING:
        raise TemporaryError(f"waiting for the {kind.replace('_', '-')} backup", delay=1)
    return backup.status


def server(ctx) -> dict:
    """The tenant's server as its superuser, started first when it is one of ours (a stopped tenant's may be down)."""
    return ctx.admin(ctx.tenant.db_server_id)[1]


def work(ctx) -> Path:
    (folder := ctx.platform.settings.data_dir / "backup-work" / ctx.operation.id).mkdir(parents=True, exist_ok=True)
    return folder


def app_files(ctx) -> Path:
    """Odoo's filestore of the tenant's database (the sample app has none: an empty folder)."""
    return ctx.platform.driver.workdir(ctx.tenant) / "filestore" / "filestore" / ops.names(ctx.tenant.subdomain)


def put(ctx, part: str) -> None:
    """Seal a part into the store; its name, size and sha256 are kept."""
    name, plain = f"{ctx.tenant.id}/{ctx.operation.id}/{part}", work(ctx) / part
    with open(plain, "rb") as source, open(plain.with_suffix(".sealed"), "wb") as target:
        size, digest = vault.seal(source, target, vault.key(ctx.platform.settings))
    vault.store(ctx.platform.settings).put(name, plain.with_suffix(".sealed"))
    moves.remember(ctx, parts={**ctx.params.get("parts", {}), part: {"name": name, "size": size, "sha256": digest}})


def tables(conn) -> dict:
    return {".".join(table): [int(n) for n in value] for table, value in replication.fingerprint(conn).items()}


def dump(ctx) -> None:
    """The dump and the row counts come from one snapshot (the app may write meanwhile); then the files, a manifest."""
    db, folder, t = ctx.spec().database, app_files(ctx), ctx.tenant
    server(ctx)  # up first: a stopped tenant's may not be
    with ops.connect(db, db["dbname"]) as conn, conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
        process = replication.client("pg_dump", db, db["dbname"], "-Fc", "-Z1", f"--snapshot={snapshot}", "-f",
                                     str(work(ctx) / "database"), run=subprocess.Popen, stderr=subprocess.PIPE)
        moves.remember(ctx, tables=tables(conn), server_version=conn.info.server_version)  # counted as it dumps
        if process.wait():
            raise PermanentError(f"pg_dump failed: {process.stderr.read().strip()[-300:]}")
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-C", str(folder), "-cf", str(work(ctx) / "files"), "."], check=True)
    for part in ("database", "files"):
        put(ctx, part)
    (work(ctx) / "manifest").write_text(json.dumps({"tenant": t.id, "subdomain": t.subdomain, "app": t.app, **{
        key: ctx.params[key] for key in ("parts", "tables", "server_version")}, "created_at": now().isoformat()}))
    put(ctx, "manifest")
    shutil.rmtree(work(ctx))


def fetch(ctx, backup: Operation) -> dict[str, Path]:
    """The backup's parts, unsealed as they are downloaded and checked against their sha256 before any use; a damaged
    backup is marked failed."""
    found, settings = {}, ctx.platform.settings
    for part, meta in backup.params["parts"].items():
        found[part], digest = work(ctx) / part, hashlib.sha256()
        try:
            with vault.store(settings).open(meta["name"]) as source, open(found[part], "wb") as plain:
                plain.writelines(vault.unseal(source, vault.key(settings), digest))
        except (FileNotFoundError, InvalidTag):
            digest = None
        if digest is None or digest.hexdigest() != meta["sha256"]:  # never offered again
            problem = f"The backup's {part} is missing or does not match its checksum: it was damaged."
            with ctx.platform.store.session() as db:
                db.execute(update(Operation).where(Operation.id == backup.id).values(status="failed", error=problem))
            raise PermanentError(problem)
    return found


def load(ctx, parts: dict, dbname: str, folder: Path | None) -> dict:
    """The backup's database restored into `dbname` (made again for the tenant's role), its files into `folder`."""
    with ops.connect(server(ctx)) as conn:
        ops.drop_database(conn, dbname)
        ops.ensure_database(conn, dbname, ops.names(ctx.tenant.subdomain))
    db = {**ctx.spec().database, "dbname": dbname}
    replication.client("pg_restore", db, dbname, "--no-owner", "--no-privileges", "--exit-on-error", "--jobs=2",
                       str(parts["database"]), capture_output=True)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        subprocess.run(["tar", "-C", str(folder), "-xf", str(parts["files"])], check=True)
    return db


def verify(ctx) -> None:
    scratch, spec = "v_" + ctx.operation.id.replace("-", "")[:20], ctx.spec()
    try:
        spec.database = load(ctx, fetch(ctx, ctx.operation), scratch, work(ctx) / "unpacked")
        with ops.connect(spec.database, scratch) as conn:
            found, wanted = tables(conn), ctx.params["tables"]
        if wrong := sorted(name for name in found.keys() | wanted.keys() if found.get(name) != wanted.get(name)):
            raise PermanentError(f"The restored copy differs from the manifest in {', '.join(wrong[:5])}.")
        getattr(apps.template(ctx.tenant.app), "check", lambda spec, folder: None)(spec, work(ctx))
    finally:
        with ops.connect(server(ctx)) as conn:
            ops.drop_database(conn, scratch)
        shutil.rmtree(work(ctx), ignore_errors=True)


def prepare(ctx) -> None:
    """In place: the current state is backed up first, so the restore can be undone; a copy: the new instance runs."""
    in_place = ctx.params["target"] == "in_place"
    if in_place and awaited(ctx.platform, ctx.tenant, "pre_restore", ctx.operation.id) != "done":
        raise PermanentError("The current state could not be backed up first, so nothing was restored.")
    if not in_place and ctx.tenant.status != "running":
        if ctx.tenant.status in ("failed", "deleting", "deleted"):
            raise PermanentError("The new instance could not be made.")
        raise TemporaryError("waiting for the new instance to run", delay=1)


def replace(ctx) -> None:
    with ctx.platform.store.session() as db:
        backup = db.get(Operation, ctx.params["backup_id"])
    if backup is None or backup.status != "done":
        raise PermanentError("Only a verified backup can be restored; this one is gone or failed.")
    parts = fetch(ctx, backup)  # checked before anything is touched
    ctx.save(status="maintenance", status_detail="Restoring a backup.")
    ctx.platform.driver.stop(ctx.tenant)
    ctx.platform.driver.route(ctx.tenant, ctx.spec(), maintenance=True)
    load(ctx, parts, ops.names(ctx.tenant.subdomain), None if ctx.params["database_only"] else app_files(ctx))
    if ctx.params["target"] == "new_instance":  # no mail to the original's customers, no jobs
        getattr(apps.template(ctx.tenant.app), "neutralize", lambda spec, folder: None)(ctx.spec(), work(ctx))
    shutil.rmtree(work(ctx), ignore_errors=True)


def start(ctx) -> None:
    moves.restart(ctx)
    ctx.save(status="running", status_detail="")


def undo(ctx) -> None:
    """A restore that stopped the app and failed says so on the tenant (`start` runs it again on what is there)."""
    if ctx.tenant.status == "maintenance":
        ctx.save(status="failed", status_detail=f"The restore failed: {ctx.params['failed']}")


def before_delete(ctx) -> None:
    """A deleted instance's last backup is kept a while; one not taken in time does not hold the deletion up."""
    if ctx.tenant.admin_set and hasattr(ctx.platform.driver, "workdir") and \
            ctx.step_age("backup") < ctx.platform.settings.ready_timeout:
        awaited(ctx.platform, ctx.tenant, "pre_delete", f"delete:{ctx.generation}")


def expired(backups: list, keep: dict) -> list:
    """Finished backups (newest first) that retention removes: it keeps the newest verified one of each of the last
    `daily` days, `weekly` weeks and `monthly` months, every one of the newest one's last 24 hours (while `daily` is
    not 0: a manual backup is not gone at the next), and up to `daily` failed ones newer than the newest verified."""
    good = [b for b in backups if b.status == "done"]
    failed = [b for b in backups if b.status == "failed" and (not good or b.created_at > good[0].created_at)]
    kept = {b.id for b in backups if b.status in PENDING} | {b.id for b in failed[:keep["daily"]]}
    kept |= {b.id for b in good if keep["daily"] and b.created_at > good[0].created_at - timedelta(days=1)}
    for period, count in (("%Y-%m-%d", keep["daily"]), ("%G-%V", keep["weekly"]), ("%Y-%m", keep["monthly"])):
        newest: dict = {}
        for backup in good:
            newest.setdefault(backup.created_at.strftime(period), backup.id)
        kept.update(list(newest.values())[:count])
    return [b for b in backups if b.id not in kept]


def sweep(platform) -> None:
    """Scheduled backups of running instances, per tier (the first a period after creation); retention: a deleted
    instance keeps its newest backup for `backup_keep_deleted_days`, then none. Objects go before their row: a crash
    in between is tried again."""
    settings, taken = platform.settings, defaultdict(list)
    with platform.store.session() as db:  # two queries, whatever the fleet's size
        for backup in db.scalars(select(Operation).where(Operation.kind == "backup")
                                 .order_by(Operation.created_at.desc())):
            taken[backup.tenant_id].append(backup)
        tenants = db.scalars(select(Tenant).where((Tenant.status == "running") | Tenant.id.in_(list(taken)))).all()
    for tenant in tenants:
        every, last = settings.backup_every.get(tenant.tier), (taken[tenant.id] or [tenant])[0].created_at
        if tenant.status == "running" and every and (now() - last).total_seconds() >= every:
            take(platform, tenant, "scheduled")
        kept = (now() - tenant.updated_at).days < settings.backup_keep_deleted_days  # the newest, by the monthly rule
        keep = settings.backup_keep if tenant.status != "deleted" else {"daily": 0, "weekly": 0, "monthly": int(kept)}
        for backup in expired(taken[tenant.id], keep):
            for part in backup.params.get("parts", {}).values():
                vault.store(settings).delete(part["name"])
            with platform.store.session() as db:
                db.execute(delete(Operation).where(Operation.id == backup.id))


operations.register("backup", ("dump", dump), ("verify", verify))
operations.register("restore", ("prepare", prepare), ("replace", replace), ("start", start), undo=undo)
