"""Metadata store: SQLAlchemy 2 models (SQLite or PostgreSQL).

A tenant row holds its desired state (`desired`, `generation`) apart from what the
reconciler observed (`status`, `observed_generation`, `progress`); the row is also the
persisted record of the long operation that moves one towards the other.
"""
import uuid
from datetime import datetime, timezone

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


def now() -> datetime:
    return datetime.now(timezone.utc)


def new_id() -> str:
    return str(uuid.uuid4())


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes on both stores (SQLite hands back naive ones)."""
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value, dialect):
        return value.replace(tzinfo=timezone.utc) if value is not None and value.tzinfo is None else value


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime}


class Keyed:
    """A generated UUID key and the row's creation time."""
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    created_at: Mapped[datetime] = mapped_column(default=now)


class Scheduled:
    """The reconciler's bookkeeping on a row it drives: its steps' progress, retry schedule and lease."""
    progress: Mapped[list] = mapped_column(JSON, default=list)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=now)
    lease_until: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(String(100))


class User(Keyed, Base):
    __tablename__ = "users"
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(200))
    full_name: Mapped[str] = mapped_column(String(200), default="")
    company: Mapped[str] = mapped_column(String(200), default="")
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)


class AuthSession(Base):
    """A refresh-token family: the current token's hash; an older one presented revokes it."""
    __tablename__ = "auth_sessions"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    previous_hash: Mapped[str | None] = mapped_column(String(64))  # accepted for a few seconds after rotation
    rotated_at: Mapped[datetime | None]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class ResetToken(Base):
    __tablename__ = "reset_tokens"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class DbServer(Keyed, Base):
    __tablename__ = "db_servers"
    name: Mapped[str] = mapped_column(String(63), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # shared | dedicated
    host: Mapped[str] = mapped_column(String(255), default="")
    port: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="creating")
    capacity: Mapped[int] = mapped_column(Integer, default=50)
    managed: Mapped[bool] = mapped_column(Boolean, default=True)  # False: registered by an operator
    secret: Mapped[str] = mapped_column(Text, default="")  # encrypted admin DSN


class Tenant(Keyed, Scheduled, Base):
    __tablename__ = "tenants"
    # A subdomain is unique among tenants that are not deleted, also under a race.
    __table_args__ = (Index("uq_tenants_live_subdomain", "subdomain", unique=True,
                            sqlite_where=text("status != 'deleted'"), postgresql_where=text("status != 'deleted'")),)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    subdomain: Mapped[str] = mapped_column(String(30))
    app: Mapped[str] = mapped_column(String(30))
    tier: Mapped[str] = mapped_column(String(20))
    resources: Mapped[dict] = mapped_column(JSON, default=dict)  # the tier's allocation when asked for
    compliance: Mapped[list] = mapped_column(JSON, default=list)
    high_performance: Mapped[bool] = mapped_column(Boolean, default=False)
    expected_data_gb: Mapped[float] = mapped_column(Float, default=0)
    admin_email: Mapped[str] = mapped_column(String(320))
    secrets: Mapped[str] = mapped_column(Text)  # encrypted JSON: admin and database passwords
    db_strategy: Mapped[str] = mapped_column(String(16))
    db_strategy_reason: Mapped[str] = mapped_column(String(64))
    db_server_id: Mapped[str | None] = mapped_column(ForeignKey("db_servers.id"))
    node: Mapped[str] = mapped_column(String(100), default="")
    url: Mapped[str] = mapped_column(String(300), default="")
    # desired state
    desired: Mapped[str] = mapped_column(String(16), default="running")  # running | stopped | suspended | deleted
    generation: Mapped[int] = mapped_column(Integer, default=1)
    # observed state
    status: Mapped[str] = mapped_column(String(16), default="creating", index=True)
    status_detail: Mapped[str] = mapped_column(Text, default="")
    observed_generation: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=now, onupdate=now)
    modules: Mapped[list] = mapped_column(JSON, default=list)  # apps asked for at creation
    admin_set: Mapped[bool] = mapped_column(Boolean, default=False)  # the admin step ran for the current password
    # selectin, not joined: a joined load makes `SELECT ... FOR UPDATE` an outer join, which PostgreSQL refuses
    owner: Mapped[User] = relationship(lazy="selectin")
    db_server: Mapped[DbServer | None] = relationship(lazy="selectin")


class Event(Base):
    __tablename__ = "events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=now)
    kind: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text)


class Operation(Keyed, Scheduled, Base):
    """A long action besides a tenant's lifecycle (install modules, move, back up, mail a reset link):
    run by the worker as a flat list of steps, with the tenant's progress shape."""
    __tablename__ = "operations"
    kind: Mapped[str] = mapped_column(String(32))
    tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    secret: Mapped[str] = mapped_column(Text, default="")  # encrypted JSON, for parameters that are secrets
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)  # pending running done failed
    error: Mapped[str] = mapped_column(Text, default="")
    requested_by: Mapped[str | None] = mapped_column(String(36))
    finished_at: Mapped[datetime | None]


class Domain(Base):
    """A customer's own hostname for a tenant (FE-5), routed once a TXT record proves control of it."""
    __tablename__ = "domains"
    name: Mapped[str] = mapped_column(String(253), primary_key=True)  # lowercase: one claim across all customers
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    token: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | verified | failing
    certificate_expires_at: Mapped[datetime | None]
    checked_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=now)
