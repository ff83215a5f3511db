"""Supervised child processes for the local driver.

Each app runs under a thread that restarts it with backoff, and ends with that thread (a parent-death
signal), so a killed platform leaves no app behind. Every child carries a mark in its environment, so a
supervisor that starts ends any other process of its name first: exactly one process. Its claim file
names the latest supervisor of a name; an earlier one (another worker on this data dir) lets go.
Secrets reach the child through its environment or 0600 files, never argv.
"""
import contextlib
import logging
import os
import resource
import shutil
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import psutil

log = logging.getLogger(__name__)
MARK = "ODOOSAAS_APP"  # set in each child's environment, to recognise our orphans
DIES_WITH_PARENT = ["setpriv", "--pdeathsig", "TERM", "--"] if shutil.which("setpriv") else []


def alive(pid: int) -> bool:
    """Running, and not a zombie waiting for a parent that is gone."""
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    return False


def marked(name: str) -> dict[int, int]:
    """Live processes started for `name`, by anyone (this worker or a dead one): pid -> resident memory."""
    return {process.pid: process.info["memory_info"].rss for process in psutil.process_iter(["environ", "memory_info"])
            if (process.info["environ"] or {}).get(MARK) == name and alive(process.pid)}


def end(pid: int, timeout: float = 10) -> None:
    """TERM, then KILL, a process group we started."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and alive(pid):
            time.sleep(0.05)


class Supervised:
    def __init__(self, name: str, argv: list[str], env: dict, logfile: Path, memory_mb: int, claim: Path):
        self.name, self.argv, self.env, self.memory_mb = name, argv, {**env, MARK: name}, memory_mb
        self.logfile, self.claim, self.token = logfile, claim, uuid.uuid4().hex
        self.stopping, self.lock = threading.Event(), threading.Lock()
        self.process: subprocess.Popen | None = None
        self.thread = threading.Thread(target=self._run, name=f"app-{name}", daemon=True)

    def start(self) -> None:
        self.claim.write_text(self.token)
        for pid in marked(self.name):  # exactly one process of a name: an earlier one (an orphan) ends first
            end(pid)
        self.thread.start()

    def claimed(self) -> bool:
        """Still ours to run: no later supervisor took it over, and its folder was not deleted."""
        with contextlib.suppress(OSError):
            return self.claim.read_text() == self.token
        return False

    def _spawn(self) -> subprocess.Popen | None:
        """A new process, unless stopping, taken over, or impossible (its folder is gone, the program missing)."""
        with self.lock:  # stop() must never miss a process spawned at the same moment
            if self.stopping.is_set() or not self.claimed():
                return None
            cap = self.memory_mb * 1024 * 1024  # address-space cap: what the README calls the memory limit
            try:
                with open(self.logfile, "ab") as out:  # forked by this thread: the child ends when the thread does
                    self.process = subprocess.Popen(DIES_WITH_PARENT + self.argv, env=self.env, stdout=out,
                                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, process_group=0)
                resource.prlimit(self.process.pid, resource.RLIMIT_AS, (cap, cap))
            except OSError as exc:
                log.error("app %s cannot start: %s", self.name, exc)
                return None
            return self.process

    def _run(self) -> None:
        delay = 0.5
        while (process := self._spawn()) is not None:
            started = time.monotonic()
            code = process.wait()
            if self.stopping.is_set():
                break
            delay = 0.5 if time.monotonic() - started > 60 else min(delay * 2, 30)
            log.warning("app %s exited with %s; restarting in %.1fs", self.name, code, delay)
            self.stopping.wait(delay)

    def stop(self) -> None:
        with self.lock:
            self.stopping.set()
            process = self.process
        if process is not None and process.poll() is None:  # a reaped pid may belong to someone else now
            end(process.pid)
        self.thread.join(timeout=15)
