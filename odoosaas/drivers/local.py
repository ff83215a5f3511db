"""The local driver: PostgreSQL clusters under `<data dir>/pg/`, apps as supervised child
processes, and one Traefik dynamic-configuration file per tenant when Traefik is present.

Several workers may share a data dir (tests do): an app runs under the worker that last applied it
(the others let go), clusters change under a file lock, and the last worker to stop stops them."""
import contextlib
import fcntl
import json
import os
import shutil
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil

from odoosaas import apps
from odoosaas.drivers import Observed
from odoosaas.drivers.supervisor import Supervised, end, marked
from odoosaas.errors import PermanentError, TemporaryError
from odoosaas.pg.clusters import Cluster, free_port, pg_bin, unreachable


def find_traefik(settings) -> str:
    cached = Path(os.environ.get("ODOOSAAS_CACHE", Path.home() / ".cache" / "odoosaas")) / "bin" / "traefik"
    found = (c for c in (settings.traefik_bin, shutil.which("traefik"), str(cached)) if c and os.access(c, os.X_OK))
    return next(found, "")


def each(action, items: list) -> None:
    """`action` on every item at once; waits for all."""
    with ThreadPoolExecutor(max(1, len(items))) as pool:
        list(pool.map(action, items))


@contextlib.contextmanager
def locked(path: Path):
    """Held by one thread of one process at a time."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def answers(port: int, host: str = "") -> bool:
    """`/web/health` on a loopback port answers 200 within 2 s (for `host`, when Traefik listens there)."""
    with contextlib.suppress(httpx.HTTPError):
        url, headers = f"http://127.0.0.1:{port}/web/health", {"Host": host} if host else {}
        return httpx.get(url, headers=headers, timeout=2).status_code == 200
    return False


def listener(port: int) -> int | None:
    """The process listening on a loopback TCP port, if any."""
    return next((c.pid for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN
                 and c.laddr.port == port), None)


class LocalDriver:
    def __init__(self, settings):
        self.settings, self.root = settings, settings.data_dir
        self.apps: dict[str, Supervised] = {}
        self.lock = threading.Lock()
        self.edge: Supervised | None = None
        for folder in ("logs", "traefik"):
            (self.root / folder).mkdir(exist_ok=True)
        self.presence = None  # a shared lock on the data dir while this worker runs
        self.closed = False

    def start(self) -> None:
        """Before a worker runs: refuse a data dir the clusters' account cannot reach, and say we are here."""
        pg_bin("initdb")  # or say how to install it
        if blocked := unreachable(self.root):
            raise PermanentError(f"PostgreSQL's account (postgres) cannot enter {blocked}, so not {self.root}: set "
                                 f"ODOOSAAS_DATA_DIR to a folder it can reach, or run `chmod o+x {blocked}`.")
        self.presence = open(self.root / "workers.lock", "a")
        fcntl.flock(self.presence, fcntl.LOCK_SH)

    def ping(self) -> None:
        if not os.access(self.root, os.W_OK):
            raise OSError(f"{self.root} is not writable")

    def nodes(self) -> list[str]:
        return [socket.gethostname()]

    # database servers
    def server_address(self, name: str, kind: str, subdomain: str) -> tuple[str, int]:
        return "127.0.0.1", free_port()

    def ensure_db_server(self, server, admin: dict, spec=None) -> None:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", server.port), timeout=0.5):
            return  # cheap check first: a listening server needs nothing
        with locked(self.root / "clusters.lock"):  # two tenants placed on a new server must not both initdb it
            self._refuse_when_closed()
            Cluster(self.root / "pg" / server.name).ensure(server.port, admin["user"], admin["password"])

    def _refuse_when_closed(self) -> None:
        if self.closed:
            raise TemporaryError("the platform is stopping", delay=1)

    def delete_db_server(self, server) -> None:
        Cluster(self.root / "pg" / server.name).destroy()

    # the app
    def workdir(self, tenant) -> Path:
        return self.root / "apps" / tenant.id

    def _port(self, tenant, fresh: bool = False) -> int:
        """The app's port, kept across restarts; never one that another tenant holds, stopped or not."""
        path = self.workdir(tenant) / "port"
        with self.lock:
            if fresh or not path.exists():
                taken = {p.read_text() for p in (self.root / "apps").glob("*/port")}
                path.write_text(next(str(p) for p in iter(free_port, None) if str(p) not in taken))
        return int(path.read_text())

    def apply(self, tenant, spec) -> None:
        workdir = self.workdir(tenant)
        workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        template = apps.template(spec.app)
        template.initialise(spec, workdir)
        app = self.apps.get(tenant.id)
        if app and app.thread.is_alive() and app.claimed():
            if app.resources == spec.resources:
                return
            app.stop()  # another tier: it starts again within the new limits
        port = self._port(tenant)
        if listener(port) not in (None, *marked(tenant.id)):  # someone else took it while we were stopped
            port = self._port(tenant, fresh=True)
        argv, env = template.local_command(spec, workdir, port)
        app = Supervised(tenant.id, argv, env, self.root / "logs" / f"{tenant.subdomain}.log",
                         spec.resources.memory_mb, workdir / "supervisor")
        app.resources = spec.resources
        with self.lock:
            self._refuse_when_closed()
            app.start()
            self.apps[tenant.id] = app

    def stop(self, tenant) -> None:
        (self.workdir(tenant) / "supervisor").unlink(missing_ok=True)  # whoever runs it (another worker) lets go
        with self.lock:
            app = self.apps.pop(tenant.id, None)
        if app:
            app.stop()
        each(end, marked(tenant.id))  # its processes that outlived a crashed worker
        self._route_file(tenant).unlink(missing_ok=True)  # its port may serve someone else later

    def delete(self, tenant) -> None:
        self.stop(tenant)
        shutil.rmtree(self.workdir(tenant), ignore_errors=True)

    # routing
    def _route_file(self, tenant) -> Path:
        return self.root / "traefik" / f"{tenant.subdomain}.yaml"

    def route(self, tenant, spec, maintenance: bool = False) -> str:
        port, path = self._port(tenant), self._route_file(tenant)
        if self.edge is None:
            path.unlink(missing_ok=True)
            return f"http://127.0.0.1:{port}"
        host, name = f"{tenant.subdomain}.{self.settings.base_domain}", f"t-{tenant.subdomain}"
        upstream = self.settings.portal_url if maintenance else f"http://127.0.0.1:{port}"
        # in maintenance, the portal's maintenance page (503) on every route, not Traefik's 404 or 502
        down = {"middlewares": [f"{name}-down"]} if maintenance else {}
        routers = {name: {"rule": f"Host(`{host}`)", "service": name, "entryPoints": ["web"], **down}}
        for index, (domain, certified) in enumerate(spec.domains.items()):  # HTTPS, and HTTP until certified
            rule, key = {"rule": f"Host(`{domain}`)", "service": name}, f"{name}-{index}-{tenant.generation}"
            # new names each generation: Traefik asks for a failed certificate again only when its router changes
            routers[f"{key}-tls"] = {**rule, "entryPoints": ["websecure"], "tls": {"certResolver": "acme"}, **down}
            routers[key] = {**rule, "entryPoints": ["web"], "middlewares": [name] * certified, **down}
        middlewares = {name: {"redirectScheme": {"scheme": "https", "port": str(self.settings.traefik_tls_port)}},
                       f"{name}-down": {"replacePath": {"path": "/maintenance"}}}
        services = {name: {"loadBalancer": {"servers": [{"url": upstream}]}}}
        staged = path.with_suffix(".tmp")  # Traefik watches the folder: never let it read half a file
        staged.write_text(json.dumps({"http": {"routers": routers, "services": services, "middlewares": middlewares}}))
        staged.replace(path)  # JSON is YAML to Traefik's file provider
        suffix = "" if self.settings.traefik_port in (80, 443) else f":{self.settings.traefik_port}"
        return f"{self.settings.public_scheme}://{host}{suffix}"

    def observe(self, tenant, spec) -> Observed:
        port, host = self._port(tenant), f"{tenant.subdomain}.{self.settings.base_domain}"
        # whoever answers must be this tenant's own process; and through Traefik too: the URL we hand out must work
        if listener(port) in marked(tenant.id) and answers(port) and (
                self.edge is None or answers(self.settings.traefik_port, host)):
            return Observed(True, node=socket.gethostname())
        return Observed(False, detail="the app does not answer yet")

    def usage(self, tenant) -> dict:
        """What the app's processes hold now (resident memory); CPU is not sampled locally."""
        return {"source": "process", "memory_bytes": sum(marked(tenant.id).values()), "cpu_millicores": None}

    # the edge
    def start_edge(self) -> bool:
        """Run Traefik on the file provider (serve and tests); False when it is absent. With a TLS port, HTTPS for
        custom domains, their certificates from ACME by HTTP-01 on the `web` entry point."""
        settings, acme = self.settings, "--certificatesResolvers.acme.acme."
        if self.edge is None and settings.traefik_port and (traefik := find_traefik(settings)):
            tls = [f"--entryPoints.websecure.address=127.0.0.1:{settings.traefik_tls_port}",
                   f"{acme}caServer={settings.acme_server}", f"{acme}email={settings.acme_email}",
                   f"{acme}storage={self.root / 'acme.json'}", f"{acme}httpChallenge.entryPoint=web"]
            argv = [traefik, f"--entryPoints.web.address=127.0.0.1:{settings.traefik_port}", "--log.level=WARN",
                    f"--providers.file.directory={self.root / 'traefik'}", "--providers.file.watch=true",
                    "--providers.providersThrottleDuration=100ms",  # new tenants routable in ~0.1 s, not 2 s
                    "--global.checkNewVersion=false", "--global.sendAnonymousUsage=false",
                    *(tls if settings.traefik_tls_port else [])]
            env = {"LEGO_CA_CERTIFICATES": settings.acme_ca_file} if settings.acme_ca_file else {}
            # one edge per data dir: its mark must not match another platform's (or test's) Traefik
            self.edge = Supervised(f"traefik:{self.root}", argv, env, self.root / "logs" / "traefik.log", 2048,
                                   self.root / "traefik.supervisor")
            self.edge.start()
        return self.edge is not None

    def close(self) -> None:
        """Stop what the local runtime started, in order: the apps (at once), Traefik, then the clusters
        when this process ran a worker and no other worker still runs on this data dir (an API-only
        process leaves them). Nothing starts afterwards."""
        with self.lock:
            self.closed, running, self.apps = True, list(self.apps.values()), {}
        for group in (running, [self.edge] if self.edge else []):  # the apps at once, then Traefik
            each(Supervised.stop, group)
        with locked(self.root / "clusters.lock"), contextlib.suppress(BlockingIOError):
            if self.presence:  # a worker ran here; the flock fails while another one (its shared lock) still does
                fcntl.flock(self.presence, fcntl.LOCK_EX | fcntl.LOCK_NB)
                each(Cluster.stop, [Cluster(folder) for folder in (self.root / "pg").glob("*")])
