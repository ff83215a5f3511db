"""custom domains

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

from odoosaas.store.models import UTCDateTime

revision = "0003"
down_revision = "0002"


def upgrade():
    stamp = lambda name, null=True: sa.Column(name, UTCDateTime(timezone=True), nullable=null)  # noqa: E731
    op.create_table(
        "domains", sa.Column("name", sa.String(253), primary_key=True),
        sa.Column("tenant_id", sa.String(36), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("token", sa.String(64), nullable=False), sa.Column("status", sa.String(16), nullable=False),
        stamp("certificate_expires_at"), stamp("checked_at"), stamp("created_at", False))


def downgrade():
    op.drop_table("domains")
