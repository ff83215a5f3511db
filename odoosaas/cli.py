"""Command line: `odoosaas serve | worker | create-admin | tenants | db upgrade | add-db-server`."""
import contextlib
import logging
import os
import signal
import sys
import threading

import click
from flask.cli import FlaskGroup, with_appcontext
from flask import current_app

from odoosaas import create_app
from odoosaas.errors import ApiError, TemporaryError
from odoosaas.platform import ensure_admin


def platform():
    return current_app.extensions["odoosaas"]


@click.group(cls=FlaskGroup, create_app=create_app, add_default_commands=False)
def main():
    """Odoo SaaS platform."""
    logging.basicConfig(level=os.environ.get("ODOOSAAS_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per health poll otherwise


def start_up(p) -> None:
    p.store.upgrade()
    if p.settings.admin_email and p.settings.admin_password:
        ensure_admin(p, p.settings.admin_email, p.settings.admin_password)


@main.command()
@with_appcontext
def serve():
    """Migrate, then serve the API and dashboard (and the worker, unless ODOOSAAS_WORKER=false)."""
    import waitress
    p = platform()
    start_up(p)
    server = waitress.create_server(current_app._get_current_object(), host=p.settings.bind, port=p.settings.port,
                                    threads=8)  # bind first: a second copy must fail before it starts a worker
    if p.settings.worker:
        start_worker(p)
    click.echo(f"Serving on http://{p.settings.bind}:{p.settings.port}")
    with stopping_children(p):
        server.run()


@contextlib.contextmanager
def stopping_children(p):
    """On TERM or Ctrl-C, stop the app processes this process supervises (clusters keep running)."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        yield
    except KeyboardInterrupt:
        pass
    finally:
        if hasattr(p.driver, "close"):
            p.driver.close()


def start_worker(p) -> threading.Event:
    from odoosaas.reconcile.worker import Worker
    stop = threading.Event()
    if hasattr(p.driver, "start_edge") and p.driver.start_edge():
        click.echo(f"Traefik routes *.{p.settings.base_domain} on port {p.settings.traefik_port}")
    threading.Thread(target=Worker(p).run, args=(stop,), name="worker", daemon=True).start()
    return stop


@main.command()
@with_appcontext
def worker():
    """Run only the reconciler (production runs it apart from the web processes)."""
    p = platform()
    start_up(p)
    start_worker(p)
    with stopping_children(p):
        threading.Event().wait()


@main.command("create-admin")
@click.argument("email")
@with_appcontext
def create_admin(email):
    """Create or promote an operator; the password comes from ODOOSAAS_ADMIN_PASSWORD or a prompt."""
    password = os.environ.get("ODOOSAAS_ADMIN_PASSWORD") or click.prompt("Password", hide_input=True,
                                                                          confirmation_prompt=True)
    if len(password) < 8:
        raise click.BadParameter("the password needs at least 8 characters")
    platform().store.upgrade()
    ensure_admin(platform(), email, password)
    click.echo(f"{email} is an operator")


@main.command()
@with_appcontext
def tenants():
    """List every tenant."""
    from odoosaas.tenants import service
    with platform().store.session() as db:
        for t in service.admin_list(db):
            click.echo(f"{t.id}  {t.subdomain:30} {t.status:10} {t.tier:10} {t.db_strategy:9} {t.owner.email}")


@main.group()
def db():
    """The metadata store."""


@db.command("upgrade")
@with_appcontext
def db_upgrade():
    """Apply the store's migrations."""
    platform().store.upgrade()
    click.echo("store is up to date")


@main.command("add-db-server")
@click.argument("name")
@click.argument("dsn")
@with_appcontext
def add_db_server(name, dsn):
    """Register an existing PostgreSQL as a shared server (password from PGPASSWORD or a prompt)."""
    from odoosaas.tenants import fleet
    password = os.environ.get("PGPASSWORD") or click.prompt("Password", hide_input=True)
    try:
        server = fleet.register_server(platform(), name, dsn, password)
    except (ApiError, TemporaryError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"registered {server.name} at {server.host}:{server.port}")


if __name__ == "__main__":
    main()
