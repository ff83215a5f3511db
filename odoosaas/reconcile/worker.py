"""The reconciler: drives every tenant whose observed state lags its desired state.

A pass over one tenant is observe -> write status -> the flat list of steps for its
desired state. Leases (a compare-and-set on `lease_until`) keep two workers off one
tenant; a worker re-ensures every tenant once after it starts, so processes and clusters
that died with the previous worker come back, and a crash at any step converges.
"""
import logging
import os
import socket
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from sqlalchemy import or_, select, update

from odoosaas.errors import PermanentError, TemporaryError
from odoosaas.reconcile import steps
from odoosaas.reconcile.context import Context
from odoosaas.store.models import Tenant, now
from odoosaas.tenants import rules

log = logging.getLogger(__name__)
LEASE = timedelta(seconds=60)


class Worker:
    def __init__(self, platform, threads: int = 4):
        self.platform = platform
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.threads = threads
        self.synced: dict[str, int] = {}  # tenant id -> generation this worker has converged
        self.inflight: set[str] = set()
        self.lock = threading.Lock()

    def run(self, stop: threading.Event) -> None:
        self.release_own_host_leases()
        with ThreadPoolExecutor(self.threads, thread_name_prefix="reconcile") as pool:
            while not stop.is_set():
                for tenant_id in self.claim(self.threads - len(self.inflight)):
                    pool.submit(self.reconcile, tenant_id)
                self.platform.wakeup.wait(0.1)
                self.platform.wakeup.clear()

    def run_until_idle(self, timeout: float = 60) -> None:
        """Reconcile in the calling thread until nothing is due (tests, CLI)."""
        import time
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            claimed = self.claim(1)
            for tenant_id in claimed:
                self.reconcile(tenant_id)
            if not claimed:
                if not self.pending():
                    return
                time.sleep(0.05)

    def release_own_host_leases(self) -> None:
        """Leases of workers on this host that are gone; others expire on their own."""
        host = socket.gethostname() + ":"
        with self.platform.store.session() as db:
            db.execute(update(Tenant).where(Tenant.lease_owner.like(host + "%"))
                       .values(lease_until=None, lease_owner=None))

    def pending(self) -> list[Tenant]:
        with self.platform.store.session() as db:
            rows = db.scalars(select(Tenant).where(Tenant.status != "deleted"))
            return [t for t in rows if self.lags(t)]

    def lags(self, tenant: Tenant) -> bool:
        if tenant.observed_generation == tenant.generation and tenant.status == "failed":
            return False  # a permanent failure waits for the user (start retries it)
        return self.synced.get(tenant.id) != tenant.generation

    def claim(self, slots: int) -> list[str]:
        claimed = []
        if slots <= 0:
            return claimed
        with self.platform.store.session() as db:
            due = db.scalars(select(Tenant).where(Tenant.status != "deleted", Tenant.next_attempt_at <= now(),
                                                  or_(Tenant.lease_until.is_(None), Tenant.lease_until < now()))
                             .order_by(Tenant.next_attempt_at))
            candidates = [t.id for t in due if self.lags(t) and t.id not in self.inflight]
        for tenant_id in candidates[:slots]:
            with self.platform.store.session() as db:
                got = db.execute(update(Tenant).where(
                    Tenant.id == tenant_id, or_(Tenant.lease_until.is_(None), Tenant.lease_until < now()))
                    .values(lease_until=now() + LEASE, lease_owner=self.owner)).rowcount
            if got:
                with self.lock:
                    self.inflight.add(tenant_id)
                claimed.append(tenant_id)
        return claimed

    def reconcile(self, tenant_id: str) -> None:
        try:
            with self.platform.store.session() as db:
                tenant = db.get(Tenant, tenant_id)
            self.drive(Context(self.platform, tenant))
        except Exception:
            log.exception("tenant %s: reconcile crashed", tenant_id)
        finally:
            with self.platform.store.session() as db:
                db.execute(update(Tenant).where(Tenant.id == tenant_id, Tenant.lease_owner == self.owner)
                           .values(lease_until=None, lease_owner=None))
            with self.lock:
                self.inflight.discard(tenant_id)
            self.platform.wake()

    def drive(self, ctx: Context) -> None:
        desired, name = ctx.tenant.desired, ""
        try:
            for name in rules.PLANS[desired]:
                if ctx.superseded():
                    return
                ctx.step(name, "running")
                steps.ACTIONS[desired][name](ctx)
                ctx.step(name, "done")
                self.fault_point(f"{desired}:{name}")
            ctx.finish(desired)
            self.synced[ctx.tenant.id] = ctx.generation
            if desired == "deleted":
                self.platform.billing.deleted(ctx.tenant)
        except TemporaryError as exc:
            ctx.step(name, "running", str(exc))
            backoff = exc.delay if exc.delay < 1 else min(exc.delay * 2 ** min(ctx.tenant.attempts, 5), 60)
            ctx.retry(str(exc), backoff)
        except PermanentError as exc:
            log.warning("tenant %s failed at %s: %s", ctx.tenant.id, name, exc)
            ctx.step(name, "failed", str(exc))
            ctx.finish("failed", str(exc), f"failed at {name}: {exc}")
        except Exception as exc:  # a bug or an unforeseen outage: retry with backoff, keep the trace
            log.exception("tenant %s: step %s raised", ctx.tenant.id, name)
            ctx.retry(f"{name}: unexpected {type(exc).__name__}; retrying", min(2 ** ctx.tenant.attempts, 60))

    def fault_point(self, step: str) -> None:
        """Tests kill the worker right after a step (ODOOSAAS_FAULT_AFTER)."""
        if step == self.platform.settings.fault_after:
            os._exit(70)
