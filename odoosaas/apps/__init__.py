"""App templates: how to run an app and set its admin login.

Each template is a module of the same few functions; drivers ask it for a command (local) or an
image and environment (Kubernetes), and the reconciler asks it to set the admin credentials.
Every app answers `/web/health` as Odoo does: that is how drivers tell it is ready.
"""
import base64
import hashlib
import os
import re
from dataclasses import dataclass, field

from odoosaas.errors import Conflict, Invalid
from odoosaas.tenants.rules import Resources

KNOWN = ("odoo", "sample")


@dataclass
class Spec:
    """Everything a driver needs to run one tenant's app; holds secrets, kept out of its repr (and so of logs)."""
    tenant_id: str
    subdomain: str
    app: str
    tier: str
    resources: Resources
    database: dict = field(repr=False)  # host, port, dbname, user, password
    admin_email: str = field(repr=False)
    admin_password: str = field(repr=False)
    url: str
    modules: list[str] = field(default_factory=list)  # apps to install at creation
    domains: dict[str, bool] = field(default_factory=dict)  # proven custom domains -> has a certificate


@dataclass
class Workload:
    """How a template runs on Kubernetes: the container, its Secret values and the uid it runs as."""
    container: dict
    secret: dict
    uid: int
    init: dict | None = None  # a container to run to completion once before the app (a Job)


def template(name: str):
    from odoosaas.apps import odoo, sample
    return {"odoo": odoo, "sample": sample}[name]


def resolve(name: str, settings) -> str:
    """The app a tenant will really run: `odoo` needs odoo-bin (or the fallback setting, never implied)."""
    if name not in KNOWN:
        raise Invalid("Unknown app.", fields={"app": f"one of {', '.join(KNOWN)}"})
    from odoosaas.apps import odoo
    if name == "odoo" and settings.driver == "local" and not odoo.odoo_bin(settings.odoo_bin).is_file():
        if not settings.local_fallback_app:
            raise Conflict("Odoo is not installed on this platform (`make odoo`, ODOOSAAS_ODOO_BIN); set "
                           "ODOOSAAS_LOCAL_FALLBACK_APP=sample to run the sample app instead.", "odoo_unavailable")
        return settings.local_fallback_app
    return name


def check_modules(app: str, names: list[str], settings) -> list[str]:
    """The apps to install at creation: Odoo's, by name (400 listing the valid ones); others take none."""
    if names and app != "odoo":
        raise Invalid("Only Odoo instances have modules.", fields={"modules": f"must be empty for the {app} app"})
    from odoosaas.apps import odoo
    valid = sorted(found["name"] for found in odoo.available_apps(settings.odoo_bin))
    if not valid and settings.driver == "kubernetes":
        # no Odoo tree beside the control plane: the image knows its apps, and its init Job installs them
        if not all(re.fullmatch(r"[a-z][a-z0-9_]{0,63}", name) for name in names):
            raise Invalid("Module names are lowercase technical names.", fields={"modules": "e.g. crm, project"})
    elif unknown := sorted(set(names) - set(valid)):
        raise Invalid(f"Unknown Odoo apps: {', '.join(unknown)}.",
                      fields={"modules": f"one of {', '.join(valid) or '(none: Odoo is not installed here)'}"})
    return list(dict.fromkeys(names))


def pbkdf2_sha512(password: str, rounds: int, salt: bytes | None = None) -> str:
    """Passlib's `$pbkdf2-sha512$` format, which Odoo's CryptContext verifies."""
    def ab64(raw: bytes) -> str:
        return base64.b64encode(raw).decode().rstrip("=").replace("+", ".")
    salt = salt or os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, rounds)
    return f"$pbkdf2-sha512${rounds}${ab64(salt)}${ab64(digest)}"


def write_private(path, text: str) -> None:
    """A 0600 file from its first byte: config files hold the tenant's database password."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
