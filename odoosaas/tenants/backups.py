"""Backups as the API and the pages see them (FE-4). Another customer's backup is a 404, as their instance is; only a
verified backup is restored or downloaded, through a signed link that expires (the stored objects are sealed: an S3
presigned URL would hand out ciphertext)."""
from types import SimpleNamespace

from itsdangerous import BadSignature, URLSafeTimedSerializer

from odoosaas import vault
from odoosaas.errors import Conflict, Invalid, NotFound
from odoosaas.reconcile import backups, operations
from odoosaas.store.models import Operation
from odoosaas.tenants import moves, rules, service

STATUS = {"pending": "running", "done": "verified"}  # else the operation's
COPIED = ("app", "tier", "compliance", "high_performance", "expected_data_gb", "admin_email")  # by a new instance


def public(platform, backup: Operation) -> dict:
    """A backup as the API shows it; a verified one has a download link that expires."""
    parts, token = backup.params.get("parts", {}), signer(platform).dumps(backup.id)
    link = f"{platform.settings.portal_url}/api/v1/backup-downloads/{token}" if backup.status == "done" else None
    return {"id": backup.id, "kind": backup.params["kind"], "status": STATUS.get(backup.status, backup.status),
            "size_bytes": sum(part["size"] for part in parts.values()), "error": backup.error,
            "sha256": parts.get("database", {}).get("sha256", ""), "created_at": backup.created_at.isoformat(),
            "download_url": link}


def listed(platform, user, tenant_id: str) -> list[dict]:
    with platform.store.session() as db:
        service.owned(db, user, tenant_id)
        return [public(platform, backup) for backup in backups.of(db, tenant_id)]


def take(platform, user, tenant_id: str) -> dict:
    with service.changing(platform, user, tenant_id) as (db, tenant):  # the worker wakes once the row is in
        if tenant.status not in ("running", "stopped"):
            raise Conflict("Only a running or stopped instance can be backed up.", "invalid_state")
        backup = backups.take(platform, tenant, "manual", db=db)
        db.flush()
        return public(platform, backup)


def restore(platform, user, tenant_id: str, backup_id: str, target: str, subdomain=None, database_only=False):
    """In place (a running instance, or one whose restore failed), or into a new instance of the same owner."""
    with platform.store.session() as db:
        tenant, backup = service.owned(db, user, tenant_id), db.get(Operation, backup_id)
        if backup is None or backup.kind != "backup" or backup.tenant_id != tenant_id:
            raise NotFound("No such backup.")
        if backup.status != "done":
            raise Conflict("Only a verified backup can be restored.", "not_verified")
        moves.refuse_if_moving(db, tenant_id)
        if target == "in_place" and (tenant.desired != "running" or tenant.status not in ("running", "failed")):
            raise Conflict("Start the instance before restoring a backup into it.", "invalid_state")
    if target == "new_instance":
        if problem := rules.subdomain_problem(subdomain or ""):
            raise Invalid("Choose a subdomain for the new instance.", fields={"subdomain": problem})
        request = {key: getattr(tenant, key) for key in COPIED}
        tenant = service.create(platform, user, SimpleNamespace(**request, subdomain=subdomain, modules=[],
                                admin_password=platform.box.open(tenant.secrets)["admin_password"]))
    params = {"backup_id": backup_id, "target": target, "database_only": database_only}
    return operations.enqueue(platform, "restore", tenant.id, params, requested_by=user.id)


def signer(platform) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(platform.settings.secret_key, salt="backup-download")


def download(platform, token: str):
    """The database dump (`pg_restore` reads it) behind a link, unsealed as it streams: a file name and the chunks."""
    try:
        backup_id = signer(platform).loads(token, max_age=platform.settings.backup_link_seconds)
    except BadSignature:
        raise NotFound("This link is unknown or has expired.") from None
    with platform.store.session() as db:
        if (backup := db.get(Operation, backup_id)) is None or backup.status != "done":
            raise NotFound("This backup is gone.")
    source = vault.store(platform.settings).open(backup.params["parts"]["database"]["name"])
    return f"{backup.created_at:%Y%m%d-%H%M%S}.dump", vault.unseal(source, vault.key(platform.settings))
