"""Kill Bill for the tests: the war and jetty-runner fetched by testbed/killbill/fetch.sh, on a `killbill`
database of the session's PostgreSQL server, in test mode (a test clock the tests move). One server per
session, shared: the test clock too, so tests that move it use their own accounts and read the server's
time instead of assuming real time."""
import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import psycopg
import pytest
from psycopg import sql

from odoosaas.pg.clusters import free_port
from tests.conftest import scratch_dir

FETCH = Path(__file__).resolve().parents[1] / "testbed" / "killbill" / "fetch.sh"
ADMIN_USER, ADMIN_PASSWORD = "admin", "password"  # the war's shiro.ini; a production server configures its own
START_TIMEOUT = 180  # seconds: 14 s on an idle 2-core machine, 49 s seen under a load of 10
# Without these opens Java 17 answers 503 everywhere, or (java.lang alone) half-starts with failing
# lifecycle handlers behind a 200 healthcheck (../shared/REFERENCE.md, Kill Bill).
OPENS = ["java.lang", "java.util", "java.net", "java.security", "sun.net.www.protocol.jar",
         "sun.net.www.protocol.file", "sun.net.www.protocol.http", "sun.net.www.protocol.https",
         "sun.net.www.protocol.jrt"]
LOG_FAILURES = ("failed to invoke lifecycle handler", "Unknown protocol")


def fetch_killbill() -> Path:
    done = subprocess.run([str(FETCH)], capture_output=True, text=True)
    if done.returncode:
        pytest.fail(f"testbed/killbill/fetch.sh failed: {done.stderr.strip()[-2000:]}")
    return Path(done.stdout.split()[-1])


def prepare_database(admin: dict, password: str, artefacts: Path) -> None:
    """A `killbill` role owning a `killbill` database with Kill Bill's tables: the superuser part first
    (an event trigger that widens serial columns), then each module's DDL as the role, so it owns them."""
    with psycopg.connect(**admin, dbname="postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE killbill LOGIN PASSWORD {}").format(sql.Literal(password)))
        conn.execute("CREATE DATABASE killbill OWNER killbill")
    with psycopg.connect(**admin, dbname="killbill", autocommit=True) as conn:
        conn.execute((artefacts / "ddl-superuser.sql").read_text())
        conn.execute("SET ROLE killbill")
        conn.execute((artefacts / "ddl-killbill.sql").read_text())


def write_properties(folder: Path, admin: dict, password: str) -> Path:
    """Kill Bill's settings. Given a properties file, Kill Bill reads its settings from it alone (not from
    -D flags), which keeps the database password out of argv; the file is 0600."""
    jdbc = f"jdbc:postgresql://{admin['host']}:{admin['port']}/killbill"
    properties = {
        "org.killbill.dao.url": jdbc, "org.killbill.dao.user": "killbill", "org.killbill.dao.password": password,
        "org.killbill.dao.maxActive": "20",
        "org.killbill.billing.osgi.dao.url": jdbc, "org.killbill.billing.osgi.dao.user": "killbill",
        "org.killbill.billing.osgi.dao.password": password, "org.killbill.billing.osgi.dao.maxActive": "5",
        # The default 50 ms wait for a pooled connection kept the healthcheck failing on a loaded machine.
        "org.killbill.dao.healthCheckExpected99thPercentile": "2s",
        "org.killbill.server.test.mode": "true", "org.killbill.server.multitenant": "true",
        "org.killbill.osgi.root.dir": str(folder / "osgi"),
        "org.killbill.osgi.bundle.install.dir": str(folder / "osgi"),
        # Queues polled as the war's sample settings do, so a clock move is processed in well under a second.
        "org.killbill.notificationq.main.sleep": "100", "org.killbill.persistent.bus.main.sleep": "0",
        "org.killbill.tenant.broadcast.rate": "1s",
    }
    path = folder / "killbill.properties"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.writelines(f"{key}={value}\n" for key, value in properties.items())
    return path


def java_command(artefacts: Path, folder: Path, properties: Path, port: int) -> list[str]:
    flags = [f"--add-opens=java.base/{package}=ALL-UNNAMED" for package in OPENS]
    flags += ["-Xms256m", "-Xmx1g", f"-Djava.io.tmpdir={folder / 'tmp'}", "-Djava.security.egd=file:/dev/./urandom",
              "-Dorg.eclipse.jetty.util.log.class=org.eclipse.jetty.util.log.StdErrLog",
              f"-Dorg.killbill.server.properties=file://{properties}"]
    return [shutil.which("java") or "/usr/bin/java", *flags, "-jar", str(artefacts / "jetty-runner.jar"),
            "--host", "127.0.0.1", "--port", str(port), str(artefacts / "killbill.war")]


def healthy(url: str, log: Path) -> bool:
    try:
        answer = httpx.get(f"{url}/1.0/healthcheck", timeout=5)
    except httpx.HTTPError:
        return False
    text = log.read_text(errors="replace")
    if any(failure in text for failure in LOG_FAILURES):
        raise AssertionError(f"Kill Bill half-started (a lifecycle handler failed):\n{text[-3000:]}")
    return answer.status_code == 200


def start_killbill(command: list[str], folder: Path, url: str) -> subprocess.Popen:
    (folder / "tmp").mkdir()
    (folder / "osgi").mkdir()
    log_path = folder / "killbill.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, cwd=folder, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while time.monotonic() < deadline:
            assert process.poll() is None, f"Kill Bill exited:\n{log_path.read_text(errors='replace')[-3000:]}"
            if healthy(url, log_path):
                return process
            time.sleep(0.5)
        raise AssertionError(f"Kill Bill not healthy after {START_TIMEOUT} s:\n"
                             f"{log_path.read_text(errors='replace')[-3000:]}")
    except BaseException:
        stop(process)
        raise


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def create_tenant(url: str, name: str) -> SimpleNamespace:
    """A Kill Bill tenant with a random key and secret, and a client that speaks for it."""
    api_key, api_secret = f"{name}-{secrets.token_hex(6)}", secrets.token_urlsafe(24)
    with httpx.Client(base_url=url, auth=(ADMIN_USER, ADMIN_PASSWORD), timeout=30) as admin:
        created = admin.post("/1.0/kb/tenants", json={"apiKey": api_key, "apiSecret": api_secret},
                             headers={"X-Killbill-CreatedBy": "tests"})
        assert created.status_code == 201, created.text
        tenant_id = admin.get("/1.0/kb/tenants", params={"apiKey": api_key}).json()["tenantId"]
    headers = {"X-Killbill-ApiKey": api_key, "X-Killbill-ApiSecret": api_secret, "X-Killbill-CreatedBy": "tests"}
    client = httpx.Client(base_url=url, auth=(ADMIN_USER, ADMIN_PASSWORD), headers=headers, timeout=60)
    return SimpleNamespace(id=tenant_id, api_key=api_key, api_secret=api_secret, client=client)


@pytest.fixture(scope="session")
def killbill(pg_admin):
    """One Kill Bill server for the session, with a tenant of its own; `new_tenant(name)` makes more
    (a test that uploads a catalog takes its own tenant, so catalog versions do not collide)."""
    artefacts, folder = fetch_killbill(), scratch_dir()
    password, port = secrets.token_urlsafe(16), free_port()
    prepare_database(pg_admin, password, artefacts)
    properties = write_properties(folder, pg_admin, password)
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    process = start_killbill(java_command(artefacts, folder, properties, port), folder, url)
    start_seconds = time.monotonic() - started
    tenant = create_tenant(url, "odoosaas")
    yield SimpleNamespace(
        url=url, admin_user=ADMIN_USER, admin_password=ADMIN_PASSWORD, api_key=tenant.api_key,
        api_secret=tenant.api_secret, tenant_id=tenant.id, client=tenant.client, process=process, pid=process.pid,
        folder=folder, log=folder / "killbill.log", start_seconds=start_seconds,
        new_tenant=lambda name: create_tenant(url, name))
    tenant.client.close()
    stop(process)
    shutil.rmtree(folder, ignore_errors=True)
