"""The Odoo template: Odoo 18 as `make odoo` installs it locally, the official image on Kubernetes.

Locally a shared PostgreSQL server gets one template database, built once by `odoo-bin -i base`
(6 s) as a role that owns no database. A tenant's database is a clone of it (0.1 s), then made
the tenant's own: every object owned by its role, a new uuid and secret, its admin.
"""
import ast
import functools
import os
import subprocess
import tempfile
import uuid
from datetime import datetime, timezone
from pathlib import Path

import psycopg
from psycopg import sql

from odoosaas.apps import Workload, pbkdf2_sha512, write_private
from odoosaas.errors import PermanentError, TemporaryError
from odoosaas.pg import ops

ADMIN_ROUNDS = 600_000  # what Odoo itself writes for pbkdf2-sha512
TEMPLATE_DB = "odoosaas_odoo_template"  # the template database, and the role owning its objects
ADMIN_ID = "(SELECT res_id FROM ir_model_data WHERE module = 'base' AND name = 'user_admin')"
SET_PARAMETER = ("INSERT INTO ir_config_parameter (key, value) VALUES (%s, %s) "
                 "ON CONFLICT (key) DO UPDATE SET value = excluded.value")
FLAGS = {"db_name": "--database", "dbfilter": "--db-filter", "db_maxconn": "--db_maxconn",
         "list_db": "--no-database-list"}  # Odoo's command-line spelling where it is not `--key-with-dashes`


def odoo_bin(configured: str = "") -> Path:
    """odoo-bin: the setting (ODOOSAAS_ODOO_BIN), else where `make odoo` installs it."""
    cache = Path(os.environ.get("ODOOSAAS_CACHE") or Path.home() / ".cache" / "odoosaas")
    return Path(configured or os.environ.get("ODOOSAAS_ODOO_BIN") or cache / "odoo-18.0" / "odoo-bin")


def command() -> list[str]:
    """odoo-bin under the virtual environment beside it (`make odoo` makes one), else its shebang."""
    python = odoo_bin().parent / ".venv" / "bin" / "python"
    return [str(python), str(odoo_bin())] if python.exists() else [str(odoo_bin())]


def run(config: Path, *args: str, verb: tuple = ()) -> None:
    done = subprocess.run([*command(), *verb, "-c", str(config), *args, "--stop-after-init", "--no-http"],
                          capture_output=True, text=True, timeout=1800)
    if done.returncode:
        raise PermanentError(f"Odoo failed ({' '.join(args)}): {done.stderr.strip()[-300:]}")


def options(spec) -> dict[str, str]:
    """The tenant's Odoo options on every runtime (config-file keys); connection and paths apart."""
    db, tier = spec.database, spec.resources
    memory = tier.memory_mb * 2**20  # no more than the supervisor's RLIMIT_AS, which Odoo cannot raise
    return {"db_name": db["dbname"], "dbfilter": f"^{db['dbname']}$", "list_db": "False", "proxy_mode": "True",
            "workers": "0", "without_demo": "all", "max_cron_threads": "1",
            "db_maxconn": str(max(4, tier.connection_limit - 4)),  # room for installs and the platform
            "limit_memory_hard": str(memory), "limit_memory_soft": str(memory * 4 // 5),
            "limit_time_cpu": "60", "limit_time_real": str(max(120, 120_000 // tier.cpu_millicores))}


def process_env(spec) -> dict[str, str]:
    """Odoo's environment on every runtime: two malloc arenas (a 64 MB one per thread would eat the
    address-space cap Odoo sets from `limit_memory_hard`), and request threads bounded by the
    connection pool, so a flood waits instead of failing with PoolError. Not Odoo's own `auto` (half
    the pool): each open websocket (one per browser) holds a thread, and half would starve at 7."""
    values = options(spec)
    threads = int(values["db_maxconn"]) - int(values["max_cron_threads"]) - 1
    return {"MALLOC_ARENA_MAX": "2", "ODOO_MAX_HTTP_THREADS": str(max(2, threads))}


def write_config(path: Path, db: dict, data_dir, **values) -> Path:
    """An Odoo config file for a local process; 0600, as it holds the database password."""
    values = {"db_host": db["host"], "db_port": db["port"], "db_user": db["user"], "db_password": db["password"],
              "addons_path": odoo_bin().with_name("addons"), "data_dir": data_dir, **values}
    write_private(path, "[options]\n" + "".join(f"{key} = {value}\n" for key, value in values.items()))
    return path


def local_config(spec, path: Path, data_dir: Path, port: int = 0) -> Path:
    return write_config(path, spec.database, data_dir, **options(spec), http_interface="127.0.0.1", http_port=port)


def tenant_connection(spec) -> psycopg.Connection:
    return ops.connect(spec.database, spec.database["dbname"])


def create_database(conn, server: dict, name: str, spec, clone: bool) -> None:
    """A clone of the server's template made the tenant's own (`clone`: a shared local server);
    else an empty database that `initialise` (or the Kubernetes init Job) fills."""
    if clone and not ops.database_exists(conn, name):
        with ops.advisory_lock(conn, TEMPLATE_DB):  # two tenants on a new server: one builds, both clone
            if not ops.database_exists(conn, TEMPLATE_DB):
                build_template(conn, server)
        ops.create_database(conn, name, name, template=TEMPLATE_DB)
    ops.ensure_database(conn, name, name)
    if clone:
        make_own(server, name, spec)


def local_command(spec, workdir: Path, port: int) -> tuple[list[str], dict]:
    config = local_config(spec, workdir / "odoo.conf", workdir / "filestore", port)
    return [*command(), "-c", str(config)], {"PATH": os.environ.get("PATH", ""), **process_env(spec)}


def initialise(spec, workdir: Path) -> None:
    """Install what the database lacks: the requested apps (and `base` in an empty database)."""
    install_modules(spec, workdir, spec.modules)


def missing(spec, names: list[str]) -> list[str]:
    with tenant_connection(spec) as conn:
        if conn.execute("SELECT to_regclass('ir_module_module')").fetchone()[0] is None:
            return ["base", *names]
        installed = {row[0] for row in conn.execute(
            "SELECT name FROM ir_module_module WHERE state = 'installed' AND name = ANY(%s)", (names,))}
    return [name for name in names if name not in installed]


def install_modules(spec, workdir: Path, names: list[str]) -> None:
    """Those of `names` the database lacks, by `odoo-bin -i` beside the running server, which reloads its
    registry when the database signals the change (Odoo's `base_registry_signaling` sequence)."""
    if names := missing(spec, names):
        workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        run(local_config(spec, workdir / "odoo-install.conf", workdir / "filestore"), "-i", ",".join(names))


def check(spec, folder: Path) -> None:
    """A backup's scratch copy: Odoo's registry loads on it."""
    run(local_config(spec, folder / "check.conf", folder / "data"))


def neutralize(spec, folder: Path) -> None:
    """A copy mails no one and runs no jobs (Odoo's own `neutralize`), and has an identity of its own."""
    run(local_config(spec, folder / "neutralize.conf", folder / "data"), verb=("neutralize",))
    with tenant_connection(spec) as conn:
        conn.cursor().executemany(SET_PARAMETER, [("database.uuid", str(uuid.uuid1())), (
            "database.secret", str(uuid.uuid4())), ("odoosaas.tenant", spec.tenant_id)])


def installed_modules(spec) -> list[dict]:
    """Every app the instance knows, with its state (`installed`, `uninstalled`, ...)."""
    with tenant_connection(spec) as conn:
        rows = conn.execute("SELECT name, shortdesc->>'en_US', state FROM ir_module_module "
                            "WHERE application ORDER BY name").fetchall()
    return [{"name": name, "title": title, "state": state} for name, title, state in rows]


def set_admin(spec) -> None:
    """Odoo has no setting for the admin login: write it, hashed as Odoo does, then signal the
    caches so a running Odoo forgets sessions and checks made with the old password."""
    digest = pbkdf2_sha512(spec.admin_password, ADMIN_ROUNDS)
    with tenant_connection(spec) as conn, conn.transaction():
        try:
            conn.execute(f"UPDATE res_users SET login = %s, password = %s WHERE id = {ADMIN_ID}",
                         (spec.admin_email, digest))
        except psycopg.errors.UndefinedTable:
            raise TemporaryError("waiting for Odoo to initialise its database", delay=5) from None
        conn.execute(f"UPDATE res_partner SET email = %s WHERE id = (SELECT partner_id FROM res_users "
                     f"WHERE id = {ADMIN_ID})", (spec.admin_email,))
        conn.execute("SELECT nextval('base_cache_signaling_default')")


def set_url(spec) -> None:
    """Links in mails follow the primary domain; frozen, or an admin's login would set it back."""
    with tenant_connection(spec) as conn:
        conn.cursor().executemany(SET_PARAMETER, [("web.base.url", spec.url), ("web.base.url.freeze", "True")])
        conn.execute("SELECT nextval('base_cache_signaling_default')")  # a running Odoo rereads parameters


def k8s(spec, settings) -> Workload:
    """The official image with the options the local runtime uses: its entrypoint reads
    HOST/PORT/USER/PASSWORD; it runs as the non-root `odoo` user, whose uid the pod must name."""
    db, uid = spec.database, settings.k8s_odoo_uid
    plain = {"HOST": db["host"], "PORT": str(db["port"]), "USER": db["user"], **process_env(spec)}
    env = [*({"name": name, "value": value} for name, value in plain.items()),  # the password from the Secret
           {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "tenant", "key": "db-password"}}}]
    args = [FLAGS.get(key, "--" + key.replace("_", "-")) + ("" if value in ("True", "False") else f"={value}")
            for key, value in options(spec).items()]  # the options as flags; booleans bare
    container = {"name": "odoo", "image": settings.k8s_odoo_image, "env": env, "args": args,
                 "volumeMounts": [{"name": "filestore", "mountPath": "/var/lib/odoo"}]}
    init = {**container, "name": "init", "args": [*args, "-i", ",".join(["base", *spec.modules]), "--stop-after-init"]}
    return Workload(container, {"db-password": db["password"]}, uid, init)


def build_template(conn, server: dict) -> None:
    """`-i base` into a scratch database as the template role, which may log in only meanwhile, and
    its files into the database; renamed into place when complete, so a crash leaves no half template."""
    building, password = f"{TEMPLATE_DB}_build", ops.new_password()
    ops.drop_database(conn, building)
    ops.ensure_role(conn, TEMPLATE_DB, password, 5)
    ops.create_database(conn, building, server["user"])  # owned by no tenant
    with ops.connect(server, building) as inside, tempfile.TemporaryDirectory() as scratch:
        inside.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(TEMPLATE_DB)))
        run(write_config(Path(scratch) / "odoo.conf", {**server, "user": TEMPLATE_DB, "password": password}, scratch,
                         db_name=building, without_demo="all"), "-i", "base")
        # then its files (logo, flags, icons) into the database
        for row_id, name in inside.execute("SELECT id, store_fname FROM ir_attachment "
                                           "WHERE store_fname IS NOT NULL").fetchall():
            inside.execute("UPDATE ir_attachment SET db_datas = %s, store_fname = NULL WHERE id = %s",
                           ((Path(scratch) / "filestore" / building / name).read_bytes(), row_id))
    ops.seal_template(conn, building, TEMPLATE_DB, TEMPLATE_DB)


def make_own(server: dict, name: str, spec) -> None:
    """The clone becomes the tenant's: its role owns every object, and it gets its own identity.
    One transaction, marked by `odoosaas.tenant`, so a crash leaves it all done or all to do."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    identity = {"database.uuid": str(uuid.uuid1()), "database.secret": str(uuid.uuid4()),
                "database.create_date": stamp, "web.base.url": spec.url, "odoosaas.tenant": spec.tenant_id}
    with ops.connect(server, name) as conn, conn.transaction():
        if conn.execute("SELECT 1 FROM ir_config_parameter WHERE key = 'odoosaas.tenant'").fetchone():
            return
        conn.execute(sql.SQL("REASSIGN OWNED BY {} TO {}").format(sql.Identifier(TEMPLATE_DB), sql.Identifier(name)))
        conn.execute(sql.SQL("REVOKE ALL ON SCHEMA public FROM {}").format(sql.Identifier(TEMPLATE_DB)))
        conn.cursor().executemany(SET_PARAMETER, list(identity.items()))


@functools.cache
def available_apps(configured: str = "") -> tuple[dict, ...]:
    """The apps (manifest `application: True`) the installed Odoo offers; none without an install."""
    found = []
    for manifest in sorted((odoo_bin(configured).parent / "addons").glob("*/__manifest__.py")):
        data = ast.literal_eval(manifest.read_text())
        if data.get("application") and data.get("installable", True):
            found.append({"name": manifest.parent.name, "title": data.get("name", ""),
                          "summary": data.get("summary", ""), "category": data.get("category", "")})
    return tuple(found)
