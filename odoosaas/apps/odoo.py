"""The Odoo template: the `odoo` executable locally, the official image on Kubernetes."""
import configparser
import io
import os
import subprocess
from pathlib import Path

import psycopg

from odoosaas.apps import pbkdf2_sha512, write_private
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
        """Odoo has no setting for the admin login: write it, hashed as Odoo does."""
        with psycopg.connect(**spec.database, autocommit=True) as conn:
            conn.execute("UPDATE res_users SET login = %s, password = %s WHERE id = (SELECT res_id FROM "
                         "ir_model_data WHERE module = 'base' AND name = 'user_admin')",
                         (spec.admin_email, pbkdf2_sha512(spec.admin_password, ADMIN_ROUNDS)))


TEMPLATE = OdooTemplate()
