"""An instance's backups (FE-4): list, take, restore, and a download link that expires."""
from typing import Literal

from flask import Response
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field

from odoosaas.api import BEARER, BODY, SIGNED_IN, current_user, fails, platform, schemas
from odoosaas.reconcile import operations
from odoosaas.tenants import backups

bp = APIBlueprint("backups", __name__, url_prefix="/api/v1", abp_tags=[Tag(name="backups")])
MINE = {**SIGNED_IN, **fails(404)}
BackupAnswer = schemas.answer("BackupAnswer", backup=dict)


class RestoreRequest(schemas.Body):
    target: Literal["in_place", "new_instance"]
    subdomain: str | None = Field(None, json_schema_extra=schemas.SUBDOMAIN)  # a new instance's
    database_only: bool = False


class BackupPath(schemas.TenantPath):
    backup_id: str


class TokenPath(BaseModel):
    token: str


@bp.get("/tenants/<tenant_id>/backups", security=BEARER, responses={200: schemas.Items, **MINE})
def list_backups(path: schemas.TenantPath):
    return {"items": backups.listed(platform(), current_user(), path.tenant_id)}


@bp.post("/tenants/<tenant_id>/backups", security=BEARER, responses={202: BackupAnswer, **BODY, **MINE, **fails(409)})
def take(path: schemas.TenantPath):
    """Back up now; the backup is `verified` once a restore of it into a scratch database matched it."""
    return {"backup": backups.take(platform(), current_user(), path.tenant_id)}, 202


@bp.post("/tenants/<tenant_id>/backups/<backup_id>/restore", security=BEARER,
         responses={202: schemas.OperationAnswer, **BODY, **MINE, **fails(409)})
def restore(path: BackupPath, body: RestoreRequest):
    """In place (the current state is backed up first) or into a new instance on `subdomain`."""
    operation = backups.restore(platform(), current_user(), path.tenant_id, path.backup_id, **body.model_dump())
    return {"operation": operations.public(operation)}, 202


@bp.get("/backup-downloads/<token>", responses={200: None, **fails(404)})
def download(path: TokenPath):
    """A verified backup's database dump, in pg_restore's custom format (the link is in the backup's `download_url`)."""
    name, chunks = backups.download(platform(), path.token)
    return Response(chunks, mimetype="application/octet-stream",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
