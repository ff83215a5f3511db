"""Tenant roles and databases on a PostgreSQL server; identifiers only through psycopg.sql.

Each tenant gets one LOGIN role and one database it owns; CONNECT is revoked from PUBLIC,
so no other tenant's role can open it.
"""
import contextlib
import secrets

import psycopg
from psycopg import sql

from odoosaas.errors import TemporaryError


def connect(server: dict, dbname: str = "postgres") -> psycopg.Connection:
    """An autocommit admin connection; `server` holds host, port, user, password."""
    try:
        return psycopg.connect(host=server["host"], port=server["port"], user=server["user"],
                               password=server["password"], dbname=dbname, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise TemporaryError(f"database server unreachable: {str(exc).strip()[:200]}", delay=3) from exc


def superuser(box, server) -> dict:
    """A server's superuser address: its row's host and port, and the user and password sealed in it."""
    return {**box.open(server.secret), "host": server.host, "port": server.port}


def new_password() -> str:
    return secrets.token_urlsafe(24)


def names(subdomain: str) -> str:
    """Role and database name of a tenant (subdomains never hold `_`, so no collisions)."""
    return "t_" + subdomain.replace("-", "_")


def ensure_role(conn, role: str, password: str, connection_limit: int) -> None:
    verb = "ALTER" if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() else "CREATE"
    conn.execute(sql.SQL("{} ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE CONNECTION LIMIT {} PASSWORD {}").format(
        sql.SQL(verb), sql.Identifier(role), sql.Literal(connection_limit), sql.Literal(password)))


def database_exists(conn, database: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone() is not None


def create_database(conn, database: str, owner: str, template: str = "template0") -> None:
    """An empty database, or a copy of `template` (no session may be connected to it: templates refuse connections)."""
    conn.execute(sql.SQL("CREATE DATABASE {} OWNER {} ENCODING 'UTF8' TEMPLATE {}").format(
        sql.Identifier(database), sql.Identifier(owner), sql.Identifier(template)))


def seal_template(conn, building: str, template: str, role: str) -> None:
    """Make a finished database the template: its role may no longer log in, no connections from now
    on, then its final name."""
    conn.execute(sql.SQL("ALTER ROLE {} NOLOGIN PASSWORD NULL").format(sql.Identifier(role)))
    conn.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(sql.Identifier(building)))
    conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (building,))
    conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(building), sql.Identifier(template)))


@contextlib.contextmanager
def advisory_lock(conn, name: str):
    """A server-wide lock, held by this session (a crash releases it)."""
    conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (name,))
    try:
        yield
    finally:
        conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (name,))


def ensure_database(conn, database: str, owner: str) -> None:
    if not database_exists(conn, database):
        create_database(conn, database, owner)
    conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(database)))
    conn.execute(sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(
        sql.Identifier(database), sql.Identifier(owner)))


def drop(conn, database: str, role: str) -> None:
    """Drop a tenant's database and role; missing ones are fine."""
    drop_database(conn, database)
    conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def drop_database(conn, database: str) -> None:
    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))


def database_size(conn, database: str) -> int:
    row = conn.execute("SELECT pg_database_size(datname) FROM pg_database WHERE datname = %s", (database,)).fetchone()
    return row[0] if row else 0


def connection_count(conn, database: str) -> int:
    return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (database,)).fetchone()[0]
