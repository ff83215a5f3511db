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


def text(name, length=None, nullable=False):
    return sa.Column(name, sa.String(length) if length else sa.Text(), nullable=nullable)


def number(name, kind=sa.Integer):
    return sa.Column(name, kind(), nullable=False)


def json(name):
    return sa.Column(name, sa.JSON(), nullable=False)


def stamp(name, nullable=False):
    return sa.Column(name, UTCDateTime(timezone=True), nullable=nullable)


def fk(name, target, nullable=False, index=True, **options):
    return sa.Column(name, sa.String(36), sa.ForeignKey(target, **options), nullable=nullable, index=index)


def scheduled():
    """The reconciler's retry schedule and lease (models.Scheduled)."""
    return number("attempts"), stamp("next_attempt_at"), stamp("lease_until", True), text("lease_owner", 100, True)


def upgrade():
    # accounts and database servers
    op.create_table("users", text("id", 36), text("email", 320), text("password_hash", 200, True),
                    text("full_name", 200), text("company", 200), number("is_admin", sa.Boolean), stamp("created_at"),
                    sa.PrimaryKeyConstraint("id"), sa.UniqueConstraint("email"))
    op.create_table("auth_sessions", text("id", 36), fk("user_id", "users.id", ondelete="CASCADE"),
                    text("token_hash", 64), text("previous_hash", 64, True), stamp("rotated_at", True),
                    stamp("expires_at"), stamp("revoked_at", True), sa.PrimaryKeyConstraint("id"))
    op.create_table("reset_tokens", text("token_hash", 64), fk("user_id", "users.id", index=False, ondelete="CASCADE"),
                    stamp("expires_at"), stamp("used_at", True), sa.PrimaryKeyConstraint("token_hash"))
    op.create_table("db_servers", text("id", 36), text("name", 63), text("kind", 16), text("host", 255),
                    number("port"), text("status", 16), number("capacity"), number("managed", sa.Boolean),
                    text("secret"), stamp("created_at"), sa.PrimaryKeyConstraint("id"), sa.UniqueConstraint("name"))
    # tenants and what they record
    op.create_table(
        "tenants", text("id", 36), fk("owner_id", "users.id"), text("subdomain", 30), text("app", 30),
        text("tier", 20), json("resources"), json("compliance"), number("high_performance", sa.Boolean),
        number("expected_data_gb", sa.Float), text("admin_email", 320), text("secrets"), text("db_strategy", 16),
        text("db_strategy_reason", 64), fk("db_server_id", "db_servers.id", nullable=True, index=False),
        text("node", 100), text("url", 300), text("desired", 16), number("generation"), text("status", 16),
        text("status_detail"), number("observed_generation"), json("progress"), *scheduled(), stamp("created_at"),
        stamp("updated_at"), json("modules"), number("admin_set", sa.Boolean), sa.PrimaryKeyConstraint("id"))
    op.create_index("ix_tenants_status", "tenants", ["status"])
    op.create_index("uq_tenants_live_subdomain", "tenants", ["subdomain"], unique=True,
                    sqlite_where=sa.text("status != 'deleted'"), postgresql_where=sa.text("status != 'deleted'"))
    op.create_table("events", sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
                    fk("tenant_id", "tenants.id", ondelete="CASCADE"), stamp("at"), text("kind", 32), text("message"),
                    sa.PrimaryKeyConstraint("id"))
    # long operations and custom domains
    op.create_table(
        "operations", text("id", 36), text("kind", 32), fk("tenant_id", "tenants.id", True, ondelete="CASCADE"),
        json("params"), text("secret"), text("status", 16), json("progress"), text("error"),
        text("requested_by", 36, True), *scheduled(), stamp("created_at"), stamp("finished_at", True),
        sa.PrimaryKeyConstraint("id"))
    op.create_index("ix_operations_status", "operations", ["status"])
    op.create_table("domains", text("name", 253), fk("tenant_id", "tenants.id", ondelete="CASCADE"), text("token", 64),
                    text("status", 16), stamp("certificate_expires_at", True), stamp("checked_at", True),
                    stamp("created_at"), sa.PrimaryKeyConstraint("name"))


def downgrade():
    for table in ("domains", "operations", "events", "tenants", "db_servers", "reset_tokens", "auth_sessions", "users"):
        op.drop_table(table)
