"""The reconciler: drives every tenant whose observed state lags its desired state, and every
pending operation, through one loop.

A pass is the flat list of steps for the row's kind. Leases (a compare-and-set on `lease_until`)
keep two workers off one row; an operation on a tenant also holds the tenant's lease. A worker
re-ensures every tenant once after it starts, so processes and clusters that died with the
previous worker come back, and a crash at any step converges.
"""
import logging
import os
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import psutil
from sqlalchemy import or_, select, update

from odoosaas.errors import PermanentError, TemporaryError
from odoosaas.reconcile import backups, operations
from odoosaas.reconcile.context import Context
from odoosaas.store.models import Operation, Tenant, now
from odoosaas.tenants import domains

log = logging.getLogger(__name__)
# tenants whose desired state is not reached (a permanent failure waits for the user)
LAGGING = select(Tenant.id).where(Tenant.status != "deleted", Tenant.observed_generation != Tenant.generation)


def free(model):
    return or_(model.lease_until.is_(None), model.lease_until < now())


def held(kind: str, row_id: str, tenant_id: str | None) -> list[tuple]:
    """The rows a pass leases: its own, and first the tenant of an operation on one (one pass a tenant at once)."""
    return ([(Tenant, tenant_id)] if tenant_id else []) + [(Tenant if kind == "tenant" else Operation, row_id)]


class Worker:
    def __init__(self, platform, threads: int = 4):
        self.platform = platform
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.lease_for = timedelta(seconds=platform.settings.lease_seconds)
        self.threads = threads
        self.resync: dict[str, None] | None = None  # tenants to re-ensure once after start (None: not listed yet)
        self.done: dict[str, tuple[int, set]] = {}  # tenant -> (generation, steps this worker did for it)
        self.inflight: set[str] = set()
        self.sweeping: set = set()
        self.lock = threading.Lock()

    def run(self, stop: threading.Event) -> None:
        self.release_dead_host_leases()
        with ThreadPoolExecutor(self.threads, thread_name_prefix="reconcile") as pool:
            renewed, swept = time.monotonic(), {}
            while not stop.is_set():
                for due_row in self.claim(self.threads - len(self.inflight)):
                    pool.submit(self.reconcile, *due_row)
                self.sweep(pool, swept)
                if time.monotonic() - renewed > self.lease_for.total_seconds() / 4:
                    renewed = self.renew_leases()
                self.platform.wakeup.wait(0.1)
                self.platform.wakeup.clear()

    def sweep(self, pool, last: dict) -> None:
        """Periodic work that is not a row (domain proofs, billing), each at its interval, one run at a time."""
        settings, billing = self.platform.settings, self.platform.billing
        if billing.woken.is_set():  # a billing callback's hint: re-read Kill Bill now
            billing.woken.clear()
            last.pop(billing.sweep, None)
        for every, job in ((settings.domain_check_seconds, domains.sweep),
                           (settings.backup_check_seconds, backups.sweep),
                           (settings.billing_check_seconds, billing.sweep)):
            if time.monotonic() - last.get(job, -every) >= every and job not in self.sweeping:
                last[job] = time.monotonic()
                self.sweeping.add(job)
                pool.submit(self.guarded, job)

    def guarded(self, job) -> None:
        try:
            job(self.platform)
        except Exception:
            log.exception("periodic %s failed", job.__module__)
        finally:
            self.sweeping.discard(job)

    def renew_leases(self) -> float:
        """A heartbeat: a step may run longer than a lease (an Odoo install), and must keep its row."""
        for model in (Tenant, Operation):
            with self.platform.store.session() as db:
                db.execute(update(model).where(model.lease_owner == self.owner, model.id.in_(list(self.inflight)))
                           .values(lease_until=now() + self.lease_for))
        return time.monotonic()

    def run_until_idle(self, timeout: float = 60) -> None:
        """Reconcile in the calling thread until nothing is due (tests, CLI)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if claimed := self.claim(1):
                self.reconcile(*claimed[0])
            elif not self.pending():
                return
            else:
                time.sleep(0.05)

    def release_dead_host_leases(self) -> None:
        """Leases of workers on this host whose process is gone; others expire on their own."""
        host = socket.gethostname() + ":"
        for model in (Tenant, Operation):
            with self.platform.store.session() as db:
                owners = set(db.scalars(select(model.lease_owner).where(model.lease_owner.like(host + "%"))))
                dead = [owner for owner in owners if not psutil.pid_exists(int(owner.split(":")[1]))]  # host:pid:nonce
                db.execute(update(model).where(model.lease_owner.in_(dead)).values(lease_until=None, lease_owner=None))

    def pending(self) -> bool:
        with self.platform.store.session() as db:
            return bool(db.scalar(LAGGING.limit(1)) or self.resync or db.scalar(
                select(Operation.id).where(Operation.status.in_(("pending", "running"))).limit(1)))

    def claim(self, slots: int) -> list[tuple]:
        """Up to `slots` due rows, leased: ("tenant", id, None) or ("operation", id, its tenant's id or None)."""
        if slots <= 0:
            return []
        with self.platform.store.session() as db:
            if self.resync is None:  # those meant to run first: their apps died with the last worker (a restore
                self.resync = dict.fromkeys(db.scalars(select(Tenant.id).where(  # starts its `maintenance` app itself)
                    Tenant.status.not_in(("deleted", "failed", "maintenance"))).order_by(Tenant.desired != "running")))
            resync = [i for i in list(self.resync) if i not in self.inflight][:500]  # list(): atomic
            due = [Tenant.next_attempt_at <= now(), free(Tenant)]
            ids = list(db.scalars(LAGGING.where(*due).order_by(Tenant.next_attempt_at).limit(slots * 4)))
            if len(ids) < slots and resync:
                found = set(db.scalars(select(Tenant.id).where(Tenant.id.in_(resync), *due)))
                ids += [tenant_id for tenant_id in resync if tenant_id in found]
            ops = db.execute(select(Operation.id, Operation.tenant_id).where(
                Operation.status.in_(("pending", "running")), Operation.next_attempt_at <= now(), free(Operation))
                .order_by(Operation.created_at).limit(slots)).all()
        claimed = []
        for due_row in [("tenant", i, None) for i in dict.fromkeys(ids)] + [("operation", *op) for op in ops]:
            if len(claimed) < slots and self.lease(*due_row):
                claimed.append(due_row)
        return claimed

    def lease(self, kind: str, row_id: str, tenant_id: str | None = None) -> bool:
        """All the rows of a pass, or none (each a compare-and-set on `lease_until`)."""
        rows = held(kind, row_id, tenant_id)
        if any(held_id in self.inflight for _, held_id in rows):
            return False
        with self.platform.store.session() as db:
            for model, held_id in rows:
                if not db.execute(update(model).where(model.id == held_id, free(model))
                                  .values(lease_until=now() + self.lease_for, lease_owner=self.owner)).rowcount:
                    db.rollback()
                    return False
        with self.lock:
            self.inflight.update(held_id for _, held_id in rows)
        return True

    def unlease(self, rows: list[tuple]) -> None:
        with self.platform.store.session() as db:
            for model, held_id in rows:
                db.execute(update(model).where(model.id == held_id, model.lease_owner == self.owner)
                           .values(lease_until=None, lease_owner=None))
        with self.lock:
            self.inflight.difference_update(held_id for _, held_id in rows)

    def reconcile(self, kind: str, row_id: str, tenant_id: str | None = None) -> None:
        """One pass over a leased row; `tenant_id`: the tenant of an operation on one, leased with it."""
        log.debug("%s %s: pass started by %s", kind, row_id, self.owner)  # tests check no two passes overlap
        try:
            with self.platform.store.session() as db:
                row = db.get(Tenant if kind == "tenant" else Operation, row_id)
                tenant = db.get(Tenant, tenant_id) if tenant_id else None
            self.drive(Context(self.platform, row, self.skip(row)) if kind == "tenant"
                       else operations.OperationContext(self.platform, row, tenant))
        except Exception:
            log.exception("%s %s: reconcile crashed", kind, row_id)
        finally:
            log.debug("%s %s: pass ended by %s", kind, row_id, self.owner)
            self.unlease(held(kind, row_id, tenant_id))
            self.platform.wake()

    def skip(self, tenant: Tenant) -> set:
        """Steps this worker did for the tenant's generation: not redone while a later one waits (e.g. readiness)."""
        if self.done.get(tenant.id, (None,))[0] != tenant.generation:
            self.done[tenant.id] = (tenant.generation, set())
        return self.done[tenant.id][1]

    def drive(self, ctx) -> None:
        name = ""
        try:
            for name, action in ctx.plan():
                if ctx.superseded():
                    return
                ctx.step(name, "running")
                action(ctx)
                ctx.step(name, "done")
                if f"{ctx.kind}:{name}" == self.platform.settings.fault_after:  # tests kill the worker here
                    os._exit(70)
            ctx.complete()
        except TemporaryError as exc:
            ctx.step(name, "running", str(exc))
            return ctx.retry(str(exc), exc.delay)
        except PermanentError as exc:
            log.warning("%s failed at %s: %s", ctx.kind, name, exc)
            ctx.step(name, "failed", str(exc))
            ctx.fail(name, str(exc))
        except Exception as exc:  # a bug or an unforeseen outage: retry with backoff, keep the trace
            log.exception("%s: step %s raised", ctx.kind, name)
            return ctx.retry(f"{name}: unexpected {type(exc).__name__}; retrying", 1)
        if ctx.row == "tenant" and self.resync:  # settled: its start-up pass is behind it
            self.resync.pop(ctx.tenant.id, None)
