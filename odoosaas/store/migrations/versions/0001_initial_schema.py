"""initial schema

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

from odoosaas.store.models import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None
LIVE = sa.text("status != 'deleted'")


def text(name, length=None, nullable=False):
    return sa.Column(name, sa.String(length) if length else sa.Text(), nullable=nullable)


def number(name, kind=sa.Integer):
    return sa.Column(name, kind(), nullable=False)


def stamp(name, nullable=False):
    return sa.Column(name, UTCDateTime(timezone=True), nullable=nullable)


def fk(name, target, nullable=False, **options):
    return sa.Column(name, sa.String(36), sa.ForeignKey(target, **options), nullable=nullable, index=True)


def accounts():
    op.create_table("users", text("id", 36), text("email", 320), text("password_hash", 200, True),
                    text("full_name", 200), text("company", 200), number("is_admin", sa.Boolean), stamp("created_at"),
                    sa.PrimaryKeyConstraint("id"), sa.UniqueConstraint("email"))
    op.create_table("auth_sessions", text("id", 36), fk("user_id", "users.id", ondelete="CASCADE"),
                    text("token_hash", 64), text("previous_hash", 64, True), stamp("rotated_at", True), stamp("expires_at"), stamp("revoked_at", True), sa.PrimaryKeyConstraint("id"))
    op.create_table("reset_tokens", text("token_hash", 64), sa.Column("user_id", sa.String(36), sa.ForeignKey(
                    "users.id", ondelete="CASCADE"), nullable=False), stamp("expires_at"), stamp("used_at", True),
                    sa.PrimaryKeyConstraint("token_hash"))


def servers():
    op.create_table("db_servers", text("id", 36), text("name", 63), text("kind", 16), text("host", 255),
                    number("port"), text("status", 16), number("capacity"), number("managed", sa.Boolean),
                    text("secret"), stamp("created_at"), sa.PrimaryKeyConstraint("id"), sa.UniqueConstraint("name"))


def tenants():
    op.create_table(
        "tenants", text("id", 36), fk("owner_id", "users.id"), text("subdomain", 30), text("app", 30),
        text("tier", 20), sa.Column("resources", sa.JSON(), nullable=False),
        sa.Column("compliance", sa.JSON(), nullable=False), number("high_performance", sa.Boolean),
        number("expected_data_gb", sa.Float), text("admin_email", 320), text("secrets"), text("db_strategy", 16),
        text("db_strategy_reason", 64), sa.Column("db_server_id", sa.String(36), sa.ForeignKey("db_servers.id")),
        text("node", 100), text("url", 300), text("desired", 16), number("generation"), text("status", 16),
        text("status_detail"), number("observed_generation"), sa.Column("progress", sa.JSON(), nullable=False),
        number("attempts"), stamp("next_attempt_at"), stamp("lease_until", True), text("lease_owner", 100, True),
        stamp("created_at"), stamp("updated_at"), sa.PrimaryKeyConstraint("id"))
    op.create_index("ix_tenants_status", "tenants", ["status"])
    op.create_index("uq_tenants_live_subdomain", "tenants", ["subdomain"], unique=True,
                    sqlite_where=LIVE, postgresql_where=LIVE)
    op.create_table("events", sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
                    fk("tenant_id", "tenants.id", ondelete="CASCADE"), stamp("at"), text("kind", 32), text("message"),
                    sa.PrimaryKeyConstraint("id"))


def upgrade():
    accounts()
    servers()
    tenants()


def downgrade():
    for table in ("events", "tenants", "db_servers", "reset_tokens", "auth_sessions", "users"):
        op.drop_table(table)
