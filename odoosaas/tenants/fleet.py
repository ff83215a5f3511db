"""What the operator sees across tenants: counts, nodes, database servers."""
from contextlib import suppress

from psycopg.conninfo import conninfo_to_dict
from sqlalchemy import case, func, select

from odoosaas.errors import Invalid, NotFound, TemporaryError
from odoosaas.pg import ops
from odoosaas.store.models import DbServer, Event, Operation, Tenant
from odoosaas.tenants import rules, service


def counts(db, column) -> dict[str, int]:
    return dict(db.execute(select(column, func.count()).where(Tenant.status != "deleted").group_by(column)).all())


def verified_shares(db) -> dict:
    """Per server, the share of its tenants' finished backups that were verified (restored and matched)."""
    verified = func.avg(case((Operation.status == "done", 1.0), else_=0.0))
    return dict(db.execute(select(Tenant.db_server_id, verified).join(Operation, Operation.tenant_id == Tenant.id).where(
        Operation.kind == "backup", Operation.status.in_(("done", "failed"))).group_by(Tenant.db_server_id)).all())


def db_servers(db) -> list[dict]:
    loads, verified = counts(db, Tenant.db_server_id), verified_shares(db)  # all but deleted tenants hold a database
    servers = db.scalars(select(DbServer).where(DbServer.status != "deleted").order_by(DbServer.kind, DbServer.name))
    return [{"id": s.id, "name": s.name, "kind": s.kind, "host": s.host, "port": s.port, "status": s.status,
             "tenants": loads.get(s.id, 0), "capacity": s.capacity,
             "utilization": round(loads.get(s.id, 0) / s.capacity, 4) if s.capacity else 0.0,
             "backups_verified": None if verified.get(s.id) is None else round(verified[s.id], 4)} for s in servers]


def with_owner(tenant: Tenant) -> dict:
    """Also the strategy the rules (SI-5) want now: one that differs (after an operator's move) is flagged."""
    wanted = rules.choose_strategy(tenant.tier, tenant.compliance, tenant.high_performance, tenant.expected_data_gb)[0]
    return {**service.public(tenant), "owner_email": tenant.owner.email, "rules_strategy": wanted}


def detail(db, tenant_id: str, platform) -> dict:
    """What an operator sees of one tenant: the tenant, its owner, its last 50 events, usage now."""
    tenant = db.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound("No such tenant.")
    usage = {**platform.driver.usage(tenant), **database_usage(platform, tenant)}
    events = db.scalars(select(Event).where(Event.tenant_id == tenant.id).order_by(Event.id.desc()).limit(50))
    return {**with_owner(tenant), "usage": usage,
            "events": [{"at": e.at.isoformat(), "kind": e.kind, "message": e.message} for e in events]}


def database_usage(platform, tenant: Tenant) -> dict:
    """Size and open connections of the tenant's database; None before it has a server, or when that does not answer."""
    server, name = tenant.db_server, ops.names(tenant.subdomain)
    if server is not None:
        with suppress(TemporaryError), ops.connect(ops.superuser(platform.box, server)) as conn:  # it may not answer
            return {"db_size_bytes": ops.database_size(conn, name), "db_connections": ops.connection_count(conn, name)}
    return {"db_size_bytes": None, "db_connections": None}


def overview(db, driver) -> dict:
    placed = counts(db, Tenant.node)
    nodes = [{"name": name, "tenants": placed.get(name, 0)} for name in driver.nodes()]
    return {"tenants_by_status": counts(db, Tenant.status), "tenants_by_strategy": counts(db, Tenant.db_strategy),
            "tenants_by_tier": counts(db, Tenant.tier), "nodes": nodes, "db_servers": db_servers(db)}


def register_server(platform, name: str, dsn: str, password: str) -> DbServer:
    """An existing PostgreSQL becomes a shared server; the platform never starts or stops it."""
    params = conninfo_to_dict(dsn)
    if "password" in params:
        raise Invalid("Leave the password out of the DSN (argv is visible to every local user).",
                      fields={"dsn": "contains a password"})
    admin = {"host": params.get("host", "127.0.0.1"), "port": int(params.get("port", 5432)),
             "user": params.get("user", "postgres"), "password": password}
    ops.connect(admin).close()  # reachable, and the password works
    server = DbServer(name=name, kind="shared", host=admin["host"], port=admin["port"], status="ready",
                      capacity=platform.settings.shared_capacity, managed=False, secret=platform.box.seal(admin))
    with platform.store.session() as db:
        db.add(server)
    return server
