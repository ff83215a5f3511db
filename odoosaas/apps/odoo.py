"""The Odoo template: the `odoo` executable locally, the official image on Kubernetes."""
import configparser
import io
import os
import subprocess
from pathlib import Path

import psycopg

from odoosaas.apps import Workload, pbkdf2_sha512, write_private
from odoosaas.drivers.k8s import specs
from odoosaas.errors import PermanentError

ADMIN_ROUNDS = 600_000  # what Odoo itself writes for pbkdf2-sha512


class OdooTemplate:
    name = "odoo"
    health_path = "/web/health"

    def _config(self, spec, workdir: Path, port: int) -> Path:
        db = spec.database
        parser = configparser.ConfigParser(interpolation=None)
        parser["options"] = {
            "db_host": db["host"], "db_port": str(db["port"]), "db_user": db["user"],
            "db_password": db["password"], "db_name": db["dbname"], "dbfilter": f"^{db['dbname']}$",
            "list_db": "False", "proxy_mode": "True", "http_interface": "127.0.0.1", "http_port": str(port),
            "data_dir": str(workdir / "filestore"), "workers": "0", "without_demo": "all",
            "limit_memory_hard": str(spec.resources.memory_mb * 1024 * 1024)}
        text = io.StringIO()
        parser.write(text)
        write_private(workdir / "odoo.conf", text.getvalue())
        return workdir / "odoo.conf"

    def local_command(self, spec, workdir: Path, port: int) -> tuple[list[str], dict]:
        return ["odoo", "-c", str(self._config(spec, workdir, port))], {"PATH": os.environ.get("PATH", "")}

    def initialise(self, spec, workdir: Path) -> None:
        """First start: install `base` without demo data (once; a marker says it is done)."""
        marker = workdir / "initialised"
        if marker.exists():
            return
        config = self._config(spec, workdir, 0)
        done = subprocess.run(["odoo", "-c", str(config), "-i", "base", "--stop-after-init", "--no-http"],
                              capture_output=True, text=True, timeout=1800)
        if done.returncode:
            raise PermanentError(f"Odoo could not initialise its database: {done.stderr.strip()[-300:]}")
        marker.touch()

    def set_admin(self, spec) -> None:
        """Odoo has no setting for the admin login: write it, hashed as Odoo does.
        (Bitnami's image sets it itself from ODOO_EMAIL / ODOO_PASSWORD.)"""
        if spec.flavour == "bitnami":
            return
        with psycopg.connect(**spec.database, autocommit=True) as conn:
            conn.execute("UPDATE res_users SET login = %s, password = %s WHERE id = (SELECT res_id FROM "
                         "ir_model_data WHERE module = 'base' AND name = 'user_admin')",
                         (spec.admin_email, pbkdf2_sha512(spec.admin_password, ADMIN_ROUNDS)))


    def k8s(self, spec, settings) -> Workload:
        return bitnami(spec, settings) if settings.k8s_odoo_flavour == "bitnami" else official(spec, settings)


def secret_env(name: str, key: str) -> dict:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": "tenant", "key": key}}}


def official(spec, settings) -> Workload:
    """The official image: its entrypoint reads HOST/PORT/USER/PASSWORD; it runs as the
    non-root `odoo` user, whose numeric uid the pod must name for `runAsNonRoot`."""
    db, uid = spec.database, settings.k8s_odoo_uid
    env = [{"name": "HOST", "value": db["host"]}, {"name": "PORT", "value": str(db["port"])},
           {"name": "USER", "value": db["user"]}, secret_env("PASSWORD", "db-password")]
    args = ["--database", db["dbname"], f"--db-filter=^{db['dbname']}$", "--no-database-list", "--proxy-mode"]
    container = {"name": "odoo", "image": settings.k8s_odoo_image, "env": env, "args": args,
                 "securityContext": specs.restricted(uid),
                 "volumeMounts": [{"name": "filestore", "mountPath": "/var/lib/odoo"}]}
    init = {**container, "name": "init", "args": [*args, "-i", "base", "--stop-after-init", "--without-demo=all"]}
    context = {"runAsNonRoot": True, "fsGroup": uid, "seccompProfile": {"type": "RuntimeDefault"}}
    return Workload(container, {"db-password": db["password"]}, "restricted", context, init)


def bitnami(spec, settings) -> Workload:
    """Bitnami's conventions: it starts as root and drops to `odoo`, so Pod Security `baseline`."""
    db = spec.database
    env = [{"name": "ODOO_DATABASE_HOST", "value": db["host"]}, {"name": "ODOO_DATABASE_PORT_NUMBER",
           "value": str(db["port"])}, {"name": "ODOO_DATABASE_NAME", "value": db["dbname"]},
           {"name": "ODOO_DATABASE_USER", "value": db["user"]}, secret_env("ODOO_DATABASE_PASSWORD", "db-password"),
           {"name": "ODOO_EMAIL", "value": spec.admin_email}, secret_env("ODOO_PASSWORD", "admin-password"),
           {"name": "ODOO_SKIP_MODULES_UPDATE", "value": "yes"}, {"name": "ODOO_LOAD_DEMO_DATA", "value": "no"},
           {"name": "ODOO_LIST_DB", "value": "no"}, {"name": "ODOO_DATABASE_FILTER", "value": f"^{db['dbname']}$"}]
    container = {"name": "odoo", "image": settings.k8s_odoo_image, "env": env,
                 "securityContext": {"allowPrivilegeEscalation": False, "seccompProfile": {"type": "RuntimeDefault"}},
                 "volumeMounts": [{"name": "filestore", "mountPath": "/bitnami/odoo"}]}
    return Workload(container, {"db-password": db["password"], "admin-password": spec.admin_password}, "baseline")


TEMPLATE = OdooTemplate()
