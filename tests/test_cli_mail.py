"""The command line, and mail through a real SMTP server."""
import re

from aiosmtpd.controller import Controller

from odoosaas.cli import main
from odoosaas.pg.clusters import free_port
from odoosaas.reconcile.worker import Worker
from tests.conftest import Caller, make_app


def run_cli(app, *args, env=None):
    from flask.cli import ScriptInfo
    return app.test_cli_runner().invoke(main, list(args), obj=ScriptInfo(create_app=lambda: app), env=env or {})


def test_create_admin(app):
    result = run_cli(app, "create-admin", "boss@example.com", env={"ODOOSAAS_ADMIN_PASSWORD": "boss-password"})
    assert result.exit_code == 0, result.output
    login = app.test_client().post("/api/v1/auth/login", json={"email": "boss@example.com", "password": "boss-password"})
    assert login.json["user"]["is_admin"] is True
    assert run_cli(app, "create-admin", "weak@example.com", env={"ODOOSAAS_ADMIN_PASSWORD": "short"}).exit_code == 2


def test_add_db_server_keeps_the_password_out_of_argv(app, pg_admin):
    dsn = f"host={pg_admin['host']} port={pg_admin['port']} user={pg_admin['user']}"
    refused = run_cli(app, "add-db-server", "leaky", dsn + f" password={pg_admin['password']}",
                      env={"PGPASSWORD": pg_admin["password"]})
    assert refused.exit_code == 1 and "Leave the password out of the DSN" in refused.output
    added = run_cli(app, "add-db-server", "external-1", dsn, env={"PGPASSWORD": pg_admin["password"]})
    assert added.exit_code == 0, added.output
    from odoosaas.tenants import fleet
    with app.extensions["odoosaas"].store.session() as db:
        servers = fleet.db_servers(db)
    assert [(s["name"], s["kind"], s["capacity"]) for s in servers] == [("external-1", "shared", 50)]
    assert pg_admin["password"] not in str(servers)


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, envelope.content.decode()))
        return "250 OK"


def test_reset_mail_goes_through_smtp(workdir):
    inbox, port = Inbox(), free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        app = make_app(workdir, smtp_host="127.0.0.1", smtp_port=port, mail_from="portal@example.com")
        Caller(app.test_client(), "mailme@example.com")
        assert app.test_client().post("/api/v1/auth/password-reset", json={"email": "mailme@example.com"}).status_code == 202
        assert inbox.messages == [], "the request only queues the mail"
        Worker(app.extensions["odoosaas"]).run_until_idle(30)
    finally:
        smtp.stop()
    assert len(inbox.messages) == 1 and inbox.messages[0][0] == ["mailme@example.com"]
    assert re.search(r"reset-password\?token=", inbox.messages[0][1].replace("=\r\n", "").replace("=\n", ""))
    assert not (workdir / "outbox").exists()


def test_reset_answers_alike_when_smtp_fails(workdir):
    """Review defect 13: a broken SMTP server must not tell known accounts from unknown ones."""
    app = make_app(workdir, smtp_host="127.0.0.1", smtp_port=free_port())  # nothing listens there
    Caller(app.test_client(), "known@example.com")
    for email in ("known@example.com", "unknown@example.com"):
        r = app.test_client().post("/api/v1/auth/password-reset", json={"email": email})
        assert (r.status_code, r.json) == (202, {})
    Worker(app.extensions["odoosaas"]).run_until_idle(3)  # the worker retries the known one's mail later
    from odoosaas.store.models import Operation
    with app.extensions["odoosaas"].store.session() as db:
        states = {o.params["email"]: (o.status, o.attempts > 0) for o in db.query(Operation)}
    assert states == {"known@example.com": ("running", True), "unknown@example.com": ("done", False)}
