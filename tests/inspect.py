"""Look at what really exists: processes, databases and roles, store rows."""
import psycopg

from odoosaas.drivers.supervisor import marked
from odoosaas.pg import ops
from odoosaas.store.models import DbServer, Tenant


def app_processes(name: str) -> list[int]:
    """Live processes started for this tenant id (or `traefik`), by the mark in their environment."""
    return list(marked(name))


def tenant_row(app, tenant_id: str) -> Tenant:
    with app.extensions["odoosaas"].store.session() as db:
        return db.get(Tenant, tenant_id)


def database_state(app, tenant_id: str) -> dict:
    """How many databases and roles of this tenant exist on its server (0 if the server is gone)."""
    p = app.extensions["odoosaas"]
    tenant = tenant_row(app, tenant_id)
    with p.store.session() as db:
        server = db.get(DbServer, tenant.db_server_id) if tenant.db_server_id else None
    if server is None:
        return {"databases": 0, "roles": 0}
    admin = {**p.box.open(server.secret), "host": server.host, "port": server.port}
    name = ops.names(tenant.subdomain)
    try:
        with psycopg.connect(**admin, dbname="postgres", connect_timeout=3) as conn:
            databases = conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (name,)).fetchone()[0]
            roles = conn.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s", (name,)).fetchone()[0]
    except psycopg.OperationalError:
        if server.status == "deleted":
            return {"databases": 0, "roles": 0}
        raise
    return {"databases": databases, "roles": roles}
