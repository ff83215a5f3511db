"""initial schema: accounts, database servers, tenants and their events, operations, custom domains

Revisions 0001-0003 were squashed into this one before the first release. It keeps the id 0003, so a
store those revisions made is at head already; a new store gets the same tables in one step.

Revision ID: 0003
Revises:
"""
import sqlalchemy as sa
from alembic import op

from odoosaas.store.models import UTCDateTime

revision = "0003"
down_revision = None


def text(name, length=None, nullable=False, index=False):
    return sa.Column(name, sa.String(length) if length else sa.Text(), nullable=nullable, index=index)


def number(name, kind=sa.Integer):
    return sa.Column(name, kind(), nullable=False)


def json(name):
    return sa.Column(name, sa.JSON(), nullable=False)


def stamp(name, nullable=False):
    return sa.Column(name, UTCDateTime(timezone=True), nullable=nullable)


def fk(name, target, nullable=False, index=True, **options):
    return sa.Column(name, sa.String(36), sa.ForeignKey(target, **options), nullable=nullable, index=index)


def key(name="id", length=36):
    return sa.Column(name, sa.String(length), primary_key=True)


def keyed():
    """A generated UUID key and the creation time (models.Keyed)."""
    return key(), stamp("created_at")


def scheduled():
    """Progress, retry schedule and lease (models.Scheduled)."""
    return (json("progress"), number("attempts"), stamp("next_attempt_at"), stamp("lease_until", True),
            text("lease_owner", 100, True))


def upgrade():
    # accounts and database servers
    op.create_table("users", *keyed(), text("email", 320), text("password_hash", 200, True), text("full_name", 200),
                    text("company", 200), number("is_admin", sa.Boolean), sa.UniqueConstraint("email"))
    op.create_table("auth_sessions", key(), fk("user_id", "users.id", ondelete="CASCADE"), text("token_hash", 64),
                    text("previous_hash", 64, True), stamp("rotated_at", True), stamp("expires_at"),
                    stamp("revoked_at", True))
    op.create_table("reset_tokens", key("token_hash", 64), fk("user_id", "users.id", index=False, ondelete="CASCADE"),
                    stamp("expires_at"), stamp("used_at", True))
    op.create_table("db_servers", *keyed(), text("name", 63), text("kind", 16), text("host", 255), number("port"),
                    text("status", 16), number("capacity"), number("managed", sa.Boolean), text("secret"),
                    sa.UniqueConstraint("name"))
    # tenants and what they record
    op.create_table(
        "tenants", *keyed(), fk("owner_id", "users.id"), text("subdomain", 30), text("app", 30), text("tier", 20),
        json("resources"), json("compliance"), number("high_performance", sa.Boolean),
        number("expected_data_gb", sa.Float), text("admin_email", 320), text("secrets"), text("db_strategy", 16),
        text("db_strategy_reason", 64), fk("db_server_id", "db_servers.id", nullable=True, index=False),
        text("node", 100), text("url", 300), text("desired", 16), number("generation"), text("status", 16, index=True),
        text("status_detail"), number("observed_generation"), *scheduled(), stamp("updated_at"), json("modules"),
        number("admin_set", sa.Boolean))
    op.create_index("uq_tenants_live_subdomain", "tenants", ["subdomain"], unique=True,
                    sqlite_where=sa.text("status != 'deleted'"), postgresql_where=sa.text("status != 'deleted'"))
    op.create_table("events", sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
                    fk("tenant_id", "tenants.id", ondelete="CASCADE"), stamp("at"), text("kind", 32), text("message"))
    # long operations and custom domains
    op.create_table("operations", *keyed(), text("kind", 32), fk("tenant_id", "tenants.id", True, ondelete="CASCADE"),
                    json("params"), text("secret"), text("status", 16, index=True), text("error"),
                    text("requested_by", 36, True), *scheduled(), stamp("finished_at", True))
    op.create_table("domains", key("name", 253), fk("tenant_id", "tenants.id", ondelete="CASCADE"), text("token", 64),
                    text("status", 16), stamp("certificate_expires_at", True), stamp("checked_at", True),
                    stamp("created_at"))


# No downgrade(): a store is never downgraded; a release is rolled back by its previous image (README, Releases).
