"""Command line: `odoosaas serve | worker | create-admin | add-db-server` (the first two migrate the store)."""
import logging
import os
import signal
import sys
import threading

import click
from flask.cli import FlaskGroup  # its commands run in the app's context
from flask import current_app

from odoosaas import create_app
from odoosaas.api import platform
from odoosaas.errors import ApiError, PermanentError, TemporaryError


@click.group(cls=FlaskGroup, create_app=create_app, add_default_commands=False)
def main():
    """Odoo SaaS platform."""
    logging.basicConfig(level=os.environ.get("ODOOSAAS_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per health poll otherwise
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # TERM ends like Ctrl-C, at any moment


def start_up(p, runtime: bool = False) -> None:
    """Refuse at once, in one line, a runtime that could not run tenants; migrate; make the admin."""
    try:
        if runtime and hasattr(p.driver, "start"):
            p.driver.start()
    except PermanentError as exc:
        raise click.ClickException(str(exc)) from None
    p.store.upgrade()
    if p.settings.admin_email and p.settings.admin_password:
        p.auth.ensure_operator(p.settings.admin_email, p.settings.admin_password)


@main.command()
def serve():
    """Migrate, then serve the API and dashboard (and the worker, unless ODOOSAAS_WORKER=false)."""
    import waitress
    p = platform()
    start_up(p, runtime=p.settings.worker)
    server = waitress.create_server(current_app._get_current_object(), host=p.settings.bind, port=p.settings.port,
                                    threads=8)  # bind first: a second copy must fail before it starts a worker
    click.echo(f"Serving on http://{p.settings.bind}:{p.settings.port}")
    run_until_stopped(p, server.run, worker=p.settings.worker)


@main.command()
def worker():
    """Run only the reconciler (production runs it apart from the web processes)."""
    p = platform()
    start_up(p, runtime=True)
    run_until_stopped(p, threading.Event().wait, worker=True)


def run_until_stopped(p, run, worker: bool) -> None:
    """Run (with the worker in a thread, and Traefik, if asked) until TERM or Ctrl-C; then no new passes, stop
    what the runtime started, and leave at once. A pass still in flight is abandoned as a crash's would be: the
    next start releases its lease and redoes it."""
    stop = threading.Event()
    if worker:
        from odoosaas.reconcile.worker import Worker
        if hasattr(p.driver, "start_edge") and p.driver.start_edge():
            click.echo(f"Traefik routes *.{p.settings.base_domain} on port {p.settings.traefik_port}")
        threading.Thread(target=Worker(p).run, args=(stop,), name="worker", daemon=True).start()
    try:
        run()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        stop.set()
        getattr(p.driver, "close", lambda: None)()
    os._exit(0)


@main.command("create-admin")
@click.argument("email")
def create_admin(email):
    """Create or promote an operator; the password comes from ODOOSAAS_ADMIN_PASSWORD or a prompt."""
    password = os.environ.get("ODOOSAAS_ADMIN_PASSWORD") or click.prompt("Password", hide_input=True,
                                                                          confirmation_prompt=True)
    if len(password) < 8:
        raise click.BadParameter("the password needs at least 8 characters")
    platform().store.upgrade()
    platform().auth.ensure_operator(email, password)
    click.echo(f"{email} is an operator")


@main.command("add-db-server")
@click.argument("name")
@click.argument("dsn")
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
