"""The metadata store on SQLite and on a real PostgreSQL server."""
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError

from odoosaas.store import Store
from odoosaas.store.models import Base, Tenant
from tests.conftest import Caller, make_app


def test_migrations_match_models(store_url):
    store = Store(store_url)
    store.upgrade()
    store.upgrade()  # a second run is a no-op
    with store.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    store.dispose()


def test_secrets_are_encrypted_at_rest(workdir, store_url):
    app = make_app(workdir, database_url=store_url)
    caller = Caller(app.test_client(), "sec@example.com")
    tenant_id = caller.create("vault", admin_password="very-secret-admin").json["tenant"]["id"]
    p = app.extensions["odoosaas"]
    with p.store.engine.connect() as connection:
        raw = connection.execute(text("SELECT * FROM tenants")).mappings().one()
        users = connection.execute(text("SELECT password_hash FROM users")).scalars().all()
    assert "very-secret-admin" not in str(dict(raw))
    assert all(h.startswith("$argon2id$") for h in users)
    with p.store.session() as db:
        assert p.box.open(db.get(Tenant, tenant_id).secrets)["admin_password"] == "very-secret-admin"
    p.store.dispose()


def test_subdomain_unique_among_live_tenants_only(workdir, store_url):
    app = make_app(workdir, database_url=store_url)
    caller = Caller(app.test_client(), "re@example.com")
    first = caller.create("again").json["tenant"]["id"]
    store = app.extensions["odoosaas"].store
    with pytest.raises(IntegrityError):
        with store.session() as db:
            row = db.get(Tenant, first)
            db.add(Tenant(**{c: getattr(row, c) for c in ("owner_id", "subdomain", "app", "tier", "admin_email",
                                                          "secrets", "db_strategy", "db_strategy_reason")}))
    with store.session() as db:
        db.execute(update(Tenant).where(Tenant.id == first).values(status="deleted"))
    assert caller.create("again").status_code == 202
    with store.session() as db:
        assert len(db.scalars(select(Tenant).where(Tenant.subdomain == "again")).all()) == 2
    store.dispose()
