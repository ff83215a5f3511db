"""Backups as the API and the pages see them (FE-4): list, take, restore, download. Another customer's backup is a
404, as their instance is; only a verified backup is restored or downloaded."""
from datetime import timedelta
from types import SimpleNamespace

from itsdangerous import BadSignature, URLSafeTimedSerializer

from odoosaas import vault
from odoosaas.errors import Conflict, Invalid, NotFound
from odoosaas.reconcile import backups, operations
from odoosaas.store.models import Operation, Tenant, now
from odoosaas.tenants import moves, rules, service

STATUS = {"pending": "running", "done": "verified"}  # else as the operation's


def public(backup: Operation) -> dict:
    parts = backup.params.get("parts", {})
    return {"id": backup.id, "status": STATUS.get(backup.status, backup.status), "kind": backup.params["kind"],
            "size_bytes": sum(part["size"] for part in parts.values()), "error": backup.error,
            "sha256": parts.get("database", {}).get("sha256", ""), "created_at": backup.created_at.isoformat(),
            "progress": operations.public(backup)["progress"]}


def listed(platform, user, tenant_id: str) -> list[dict]:
    with platform.store.session() as db:
        service.owned(db, user, tenant_id)
        return [public(backup) for backup in backups.of(db, tenant_id)]


def take(platform, user, tenant_id: str) -> dict:
    with platform.store.session() as db:
        tenant = service.owned(db, user, tenant_id)
        if tenant.status not in ("running", "stopped"):
            raise Conflict("Only a running or stopped instance can be backed up.", "invalid_state")
        backup = backups.take(platform, tenant, "manual", db=db)
        db.flush()
        return public(backup)


def verified(db, user, tenant_id: str, backup_id: str) -> Operation:
    service.owned(db, user, tenant_id)
    backup = db.get(Operation, backup_id)
    if backup is None or backup.kind != "backup" or backup.tenant_id != tenant_id:
        raise NotFound("No such backup.")
    if backup.status != "done":
        raise Conflict("Only a verified backup can be restored or downloaded.", "not_verified")
    return backup


def restore(platform, user, tenant_id: str, backup_id: str, target: str, subdomain=None, database_only=False):
    """In place (a running instance, or one whose restore failed), or into a new instance of the same owner."""
    with platform.store.session() as db:
        verified(db, user, tenant_id, backup_id)
        tenant = db.get(Tenant, tenant_id)
        moves.refuse_if_moving(db, tenant_id)
        if target == "in_place" and (tenant.desired != "running" or tenant.status not in ("running", "failed")):
            raise Conflict("Start the instance before restoring a backup into it.", "invalid_state")
    if target == "new_instance":
        tenant = copy_of(platform, user, tenant, subdomain or "")
    params = {"backup_id": backup_id, "target": target, "database_only": database_only}
    return operations.enqueue(platform, "restore", tenant.id, params, requested_by=user.id)


def copy_of(platform, user, source: Tenant, subdomain: str) -> Tenant:
    """A new instance like the source (app, tier, admin), which the restore then fills."""
    if problem := rules.subdomain_problem(subdomain):
        raise Invalid("Choose a valid subdomain for the new instance.", fields={"subdomain": problem})
    password = platform.box.open(source.secrets)["admin_password"]
    return service.create(platform, user, SimpleNamespace(
        subdomain=subdomain, app=source.app, tier=source.tier, compliance=source.compliance, modules=[],
        high_performance=source.high_performance, expected_data_gb=source.expected_data_gb,
        admin_email=source.admin_email, admin_password=password))


def signer(platform) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(platform.settings.secret_key, salt="backup-download")


def link(platform, user, tenant_id: str, backup_id: str) -> tuple[str, str]:
    """A token for the download route, and when it expires."""
    with platform.store.session() as db:
        verified(db, user, tenant_id, backup_id)
    expires = now() + timedelta(seconds=platform.settings.backup_link_seconds)
    return signer(platform).dumps(backup_id), expires.isoformat()


def download(platform, token: str):
    """The database dump (`pg_restore` reads it) behind a link, unsealed as it streams: a file name and chunks."""
    try:
        backup_id = signer(platform).loads(token, max_age=platform.settings.backup_link_seconds)
    except BadSignature:
        raise NotFound("This link is unknown or has expired.") from None
    with platform.store.session() as db:
        backup = db.get(Operation, backup_id)
    if backup is None or backup.status != "done":
        raise NotFound("This backup is gone.")
    source = vault.make_store(platform.settings).open(backup.params["parts"]["database"]["name"])
    name = f"{backup.created_at:%Y%m%d-%H%M%S}-{backup.id[:8]}.dump"
    return name, vault.unseal(source, vault.key(platform.settings))
