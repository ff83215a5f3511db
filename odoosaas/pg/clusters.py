"""Local PostgreSQL clusters made with initdb and run with pg_ctl.

PostgreSQL refuses to run as root: as root, the cluster runs as the unprivileged
`postgres` account (Debian's package creates it) in folders it owns.
"""
import glob
import os
import shutil
import socket
import subprocess
from pathlib import Path

from odoosaas.errors import PermanentError, TemporaryError

READY_MARK = "odoosaas-ready"


def pg_bin(name: str) -> str:
    """A PostgreSQL server program: on PATH, else Debian's versioned folder."""
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if not found:
        raise PermanentError(f"PostgreSQL's {name} is not installed (Debian: apt-get install postgresql).")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_as_owner(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a server program as the cluster owner (`postgres` when we are root)."""
    if os.geteuid() == 0:
        argv = ["runuser", "-u", "postgres", "--", *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, **kwargs)


def unreachable(folder: Path) -> Path | None:
    """The first folder on the way to `folder` that the cluster owner may not pass through, if any."""
    return next((step for step in [*reversed(folder.parents), folder]
                 if run_as_owner(["test", "-x", str(step)]).returncode), None)


class Cluster:
    def __init__(self, folder: Path):
        self.folder, self.data = folder, folder / "data"

    def ensure(self, port: int, superuser: str, password: str, max_connections: int = 300) -> None:
        """Create (again, if a crash left half a cluster) and start (a running one stays); idempotent."""
        if not (self.folder / READY_MARK).exists():
            self._init(port, superuser, password, max_connections)
        self.start()

    def _init(self, port: int, superuser: str, password: str, max_connections: int) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        self.folder.parent.chmod(0o711)  # the `postgres` account passes through, lists nothing
        self.folder.mkdir(mode=0o700)
        pwfile = self.folder / "password"  # for initdb only: its folder is the cluster owner's alone (0700)
        pwfile.write_text(password)
        for path in (self.folder, pwfile) if os.geteuid() == 0 else ():  # as root, both go to `postgres`
            shutil.chown(path, "postgres", "postgres")
        try:
            done = run_as_owner([pg_bin("initdb"), "-D", str(self.data), "-U", superuser, "--pwfile", str(pwfile),
                                 "--auth", "scram-sha-256", "-E", "UTF8", "--locale", "C.UTF-8"])
        finally:
            pwfile.unlink()
        if done.returncode:
            raise TemporaryError(f"initdb failed: {done.stderr.strip()[-300:]}", delay=5)
        settings = (f"port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\n"
                    f"max_connections = {max_connections}\nshared_buffers = 32MB\nfsync = on\n"
                    "wal_level = logical\nmax_replication_slots = 20\nmax_wal_senders = 20\n")  # moves replicate
        with open(self.data / "postgresql.auto.conf", "a") as conf:
            conf.write(settings)
        (self.folder / READY_MARK).touch()

    def start(self) -> None:
        """Start, or find it running already (then `pg_ctl start` fails and `pg_ctl status` succeeds)."""
        done = run_as_owner([pg_bin("pg_ctl"), "start", "-w", "-t", "60", "-D", str(self.data),
                             "-l", str(self.folder / "server.log")])
        if done.returncode and run_as_owner([pg_bin("pg_ctl"), "status", "-D", str(self.data)]).returncode:
            raise TemporaryError(f"PostgreSQL did not start: {done.stdout.strip()[-300:]}", delay=5)

    def stop(self) -> None:
        if self.data.exists():
            run_as_owner([pg_bin("pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(self.data)])

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
