"""Copying a tenant's database between servers with logical replication (REFERENCE.md): the schema by pg_dump, the
rows by a publication and a subscription, the sequences at the switch. Identifiers only through psycopg.sql."""
import os
import subprocess

from psycopg import sql
from psycopg.conninfo import make_conninfo

from odoosaas.errors import PermanentError
from odoosaas.pg.clusters import pg_bin

TABLES = "SELECT schemaname, tablename FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"


def client(program: str, server: dict, dbname: str, *args: str, run=subprocess.run, **kwargs):
    """pg_dump or psql as the server's superuser; the password in the environment, never argv."""
    done = run([pg_bin(program), "-h", server["host"], "-p", str(server["port"]), "-U", server["user"], "-d", dbname,
                *args], env={**os.environ, "PGPASSWORD": server["password"]}, text=True, **kwargs)
    if run is subprocess.run and done.returncode:
        raise PermanentError(f"{program} failed: {done.stderr.strip()[-300:]}")
    return done.stdout if run is subprocess.run else done


def copy_schema(source: dict, target: dict, dbname: str) -> None:
    schema = client("pg_dump", source, dbname, "--schema-only", "--no-publications", "--no-subscriptions",
                    capture_output=True, timeout=600)
    client("psql", target, dbname, "-q", "-v", "ON_ERROR_STOP=1", input=schema, capture_output=True, timeout=600)


def copy_rows(source: dict, target: dict, conn, dbname: str) -> None:
    """Where logical replication cannot be used, while nothing writes: the target's tables emptied (a retry starts
    over), then the source's rows piped from pg_dump into psql."""
    for table in conn.execute(TABLES).fetchall():
        conn.execute(sql.SQL("TRUNCATE {} CASCADE").format(sql.Identifier(*table)))
    dump = client("pg_dump", source, dbname, "--data-only", "--disable-triggers", run=subprocess.Popen,
                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    client("psql", target, dbname, "-q", "-v", "ON_ERROR_STOP=1", stdin=dump.stdout, capture_output=True)
    if dump.wait():
        raise PermanentError("pg_dump failed while copying the rows.")


def tables_without_key(conn) -> list:
    """Such tables refuse UPDATE and DELETE once published: the app would break during the copy."""
    return conn.execute(TABLES + " AND NOT EXISTS (SELECT 1 FROM pg_index WHERE indisprimary AND indrelid = "
                        "format('%I.%I', schemaname, tablename)::regclass)").fetchall()


def subscribe(source, target, name: str, address: dict) -> None:
    """A publication of every table on the source, a subscription to it on the target (its conninfo, with the source
    superuser's password, is in pg_subscription, which only superusers read)."""
    if not subscribed(target, name):
        unpublish(source, name)  # what a crash half-way left
        source.execute(sql.SQL("CREATE PUBLICATION {} FOR ALL TABLES").format(sql.Identifier(name)))
        conninfo = make_conninfo(**{key: address[key] for key in ("host", "port", "user", "password", "dbname")})
        target.execute(sql.SQL("CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {}").format(
            sql.Identifier(name), sql.Literal(conninfo), sql.Identifier(name)))


def subscribed(conn, name: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_subscription WHERE subname = %s", (name,)).fetchone() is not None


def copying(conn, name: str) -> int:
    """Tables whose initial copy has not finished."""
    return conn.execute("SELECT count(*) FROM pg_subscription_rel r JOIN pg_subscription s ON s.oid = r.srsubid "
                        "WHERE s.subname = %s AND r.srsubstate <> 'r'", (name,)).fetchone()[0]


def unsubscribe(conn, name: str) -> None:
    """Dropping the subscription drops its slot on the source too."""
    conn.execute(sql.SQL("DROP SUBSCRIPTION IF EXISTS {}").format(sql.Identifier(name)))


def unpublish(conn, name: str) -> None:
    """The publication, and a slot left by a CREATE SUBSCRIPTION that died half-way."""
    conn.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(name)))
    conn.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s "
                 "AND NOT active", (name,))


def freeze(conn, role: str) -> None:
    """The tenant's role may no longer log in to the source, and its sessions end: no more writes there."""
    conn.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(sql.Identifier(role)))
    conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,))


def fingerprint(conn) -> dict:
    """Every table's row count and an order-free checksum of its rows."""
    query = sql.SQL("SELECT count(*), coalesce(sum(hashtext(x::text)::bigint), 0) FROM {} x")
    return {table: conn.execute(query.format(sql.Identifier(*table))).fetchone() for table in conn.execute(TABLES)}


def copy_sequences(source, target) -> None:
    """Sequences are not replicated: each target sequence continues where the source's stopped."""
    for schema, name, value in source.execute("SELECT schemaname, sequencename, last_value FROM pg_sequences "
                                              "WHERE last_value IS NOT NULL").fetchall():
        target.execute("SELECT setval(%s::regclass, %s)", (sql.Identifier(schema, name).as_string(target), value))
