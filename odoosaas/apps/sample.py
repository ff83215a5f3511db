"""The sample app: a tiny WSGI app that stands in for Odoo where no Odoo exists.

It connects with its tenant's own role, keeps a visit counter in its own table, shows the
tenant name and answers `/web/health` like Odoo. Run: `python -m odoosaas.apps.sample CONFIG`.
"""
import base64
import hmac
import html
import json
import os
import sys
from pathlib import Path

import psycopg

from odoosaas.apps import Workload, pbkdf2_sha512, write_private

SCHEMA = ("CREATE TABLE IF NOT EXISTS sample_visits (id int PRIMARY KEY, visits bigint NOT NULL);"
          "CREATE TABLE IF NOT EXISTS sample_admin (id int PRIMARY KEY, login text NOT NULL, password text NOT NULL)")


def connect(database: dict) -> psycopg.Connection:
    return psycopg.connect(**database, connect_timeout=5, autocommit=True)


def local_command(spec, workdir: Path, port: int) -> tuple[list[str], dict]:
    config = workdir / "sample.json"
    write_private(config, json.dumps({"name": spec.subdomain, "port": port, "database": spec.database}))
    return [sys.executable, "-m", "odoosaas.apps.sample", str(config)], {"PATH": os.environ.get("PATH", "")}


def create_database(conn, server: dict, name: str, spec, clone: bool) -> None:
    from odoosaas.pg import ops  # here: the app's own process stays small (tiny tiers run it)
    ops.ensure_database(conn, name, name)  # empty: the app makes its tables


def initialise(spec, workdir: Path) -> None:
    """Nothing: `set_admin`, which runs before a tenant is ready on every runtime, makes the tables."""


def set_admin(spec) -> None:
    with connect(spec.database) as conn:
        conn.execute(SCHEMA)
        conn.execute("INSERT INTO sample_admin VALUES (1, %s, %s) ON CONFLICT (id) DO UPDATE "
                     "SET login = excluded.login, password = excluded.password",
                     (spec.admin_email, pbkdf2_sha512(spec.admin_password, 29000)))


def k8s(spec, settings) -> Workload:
    """The platform's own image runs it; the config (with the password) is a Secret file."""
    config = json.dumps({"name": spec.subdomain, "host": "0.0.0.0", "port": 8069, "database": spec.database})
    container = {"name": "sample", "image": settings.k8s_platform_image,
                 "command": ["python", "-m", "odoosaas.apps.sample", "/etc/odoosaas/sample.json"],
                 "volumeMounts": [{"name": "secrets", "mountPath": "/etc/odoosaas", "readOnly": True}]}
    return Workload(container, {"sample.json": config}, 10001)


def password_matches(stored: str, password: str) -> bool:
    _, _, rounds, salt, _ = stored.split("$")
    salt = base64.b64decode(salt.replace(".", "+") + "=" * (-len(salt) % 4))
    return hmac.compare_digest(stored, pbkdf2_sha512(password, int(rounds), salt))


def authenticate(conn, request: bytes) -> str:
    """Odoo's JSON-RPC login, in miniature: tests check the admin credentials the same way on both apps."""
    params = json.loads(request or b"{}").get("params", {})
    row = conn.execute("SELECT login, password FROM sample_admin WHERE id = 1").fetchone()
    if row and row[0] == params.get("login") and password_matches(row[1], str(params.get("password", ""))):
        return json.dumps({"jsonrpc": "2.0", "result": {"uid": 2}})
    return json.dumps({"jsonrpc": "2.0", "error": {"message": "Access Denied"}})


def make_wsgi(config: dict):
    def app(environ, start_response):
        try:
            request = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            body, status = page(config, environ.get("PATH_INFO", "/"), request)
        except psycopg.Error:
            body, status = json.dumps({"status": "fail"}), "503 Service Unavailable"
        kind = "application/json" if body.startswith("{") else "text/html; charset=utf-8"
        start_response(status, [("Content-Type", kind)])
        return [body.encode()]
    return app


def page(config: dict, path: str, request: bytes = b"") -> tuple[str, str]:
    with connect(config["database"]) as conn:
        if path == "/web/session/authenticate":
            return authenticate(conn, request), "200 OK"
        if path == "/web/health":
            conn.execute("SELECT 1")
            return json.dumps({"status": "pass"}), "200 OK"
        visits = conn.execute("INSERT INTO sample_visits VALUES (1, 1) ON CONFLICT (id) DO UPDATE "
                              "SET visits = sample_visits.visits + 1 RETURNING visits").fetchone()[0]
    name = html.escape(config["name"])  # nothing about the admin: visitors are anonymous
    return (f"<!doctype html><title>{name}</title><h1>{name}</h1><p>Sample app of tenant <b>{name}</b>.</p>"
            f"<p>Visits: <span id=visits>{visits}</span></p>"), "200 OK"


def main(path: str) -> None:
    import waitress
    config = json.loads(Path(path).read_text())
    waitress.serve(make_wsgi(config), host=config.get("host", "127.0.0.1"), port=config["port"], threads=4, _quiet=True)


if __name__ == "__main__":
    main(sys.argv[1])
