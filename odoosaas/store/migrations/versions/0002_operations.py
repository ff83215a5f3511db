"""operations; the modules a tenant asked for; whether its admin step ran

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

from odoosaas.store.models import UTCDateTime

revision = "0002"
down_revision = "0001"


def upgrade():
    with op.batch_alter_table("tenants") as table:
        table.add_column(sa.Column("modules", sa.JSON(), nullable=False, server_default="[]"))
        # tenants made before this revision had their admin set at creation
        table.add_column(sa.Column("admin_set", sa.Boolean(), nullable=False, server_default=sa.true()))
    stamp = lambda name, null=False: sa.Column(name, UTCDateTime(timezone=True), nullable=null)  # noqa: E731
    op.create_table(
        "operations", sa.Column("id", sa.String(36), primary_key=True), sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("tenant_id", sa.String(36), sa.ForeignKey("tenants.id", ondelete="CASCADE"), index=True),
        sa.Column("params", sa.JSON(), nullable=False), sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, index=True), sa.Column("progress", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False), sa.Column("requested_by", sa.String(36)),
        sa.Column("attempts", sa.Integer(), nullable=False), stamp("next_attempt_at"), stamp("lease_until", True),
        sa.Column("lease_owner", sa.String(100)), stamp("created_at"), stamp("finished_at", True))


def downgrade():
    op.drop_table("operations")
    with op.batch_alter_table("tenants") as table:
        table.drop_column("admin_set")
        table.drop_column("modules")
