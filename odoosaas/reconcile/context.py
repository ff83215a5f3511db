"""What one pass knows about the row it drives (a tenant's lifecycle or an operation), and how it
writes back what it saw: progress per step, retries, the outcome."""
from datetime import datetime, timedelta

from sqlalchemy import update

from odoosaas.apps import Spec
from odoosaas.pg import ops
from odoosaas.store.models import DbServer, Tenant, now
from odoosaas.tenants import domains, rules, service


class Context:
    """A tenant's lifecycle pass: the plan of its desired state."""
    row, message = "tenant", "status_detail"  # which row; the field its retries explain themselves in
    record = property(lambda self: self.tenant)  # the row whose progress and retries this pass keeps
    kind = property(lambda self: self.tenant.desired)  # which plan: the desired state

    def __init__(self, platform, tenant: Tenant, skip: set | None = None):
        self.platform, self.tenant, self.generation = platform, tenant, tenant.generation
        self.secrets = platform.box.open(tenant.secrets)
        self.resources = rules.Resources(**tenant.resources)
        self.skip = set() if skip is None else skip  # steps this worker already did for this generation

    def plan(self) -> list:
        from odoosaas.reconcile.steps import ACTIONS
        return [(name, ACTIONS[self.kind][name]) for name in rules.PLANS[self.kind] if name not in self.skip]

    def server(self, server_id: str) -> DbServer:
        with self.platform.store.session() as db:
            return db.get(DbServer, server_id)

    def admin(self, server_id: str) -> tuple[DbServer, dict]:
        """A server and its superuser's address; one of ours is started (or made) first."""
        server = self.server(server_id)
        address = ops.superuser(self.platform.box, server)
        if server.managed:  # Kubernetes needs the tenant's spec: a dedicated server lives in its namespace
            self.platform.driver.ensure_db_server(server, address, self.spec())
            self.mark_server(server, "ready")
        return server, address

    def spec(self) -> Spec:
        t, name = self.tenant, ops.names(self.tenant.subdomain)
        with self.platform.store.session() as db:
            server, routed = db.get(DbServer, t.db_server_id), domains.routed(db, t.id)
        database = {"host": server.host, "port": server.port, "dbname": name, "user": name,
                    "password": self.secrets["db_password"]}
        url = f"https://{next(iter(routed))}" if routed else service.planned_url(self.platform.settings, t.subdomain)
        return Spec(tenant_id=t.id, subdomain=t.subdomain, app=t.app, tier=t.tier, resources=self.resources,
                    database=database, admin_email=t.admin_email, admin_password=self.secrets["admin_password"],
                    url=url, modules=list(t.modules or []), domains=routed)

    def save(self, force: bool = False, **values) -> bool:
        """Write tenant fields unless the user changed the desired state meanwhile (then False), or `force`d."""
        same = [Tenant.id == self.tenant.id] + ([] if force else [Tenant.generation == self.generation])
        with self.platform.store.session() as db:
            done = db.execute(update(Tenant).where(*same).values(updated_at=now(), **values))
        for key, value in values.items():
            setattr(self.tenant, key, value)
        return done.rowcount == 1

    keep = save  # writes the row this pass keeps: the tenant (an operation's pass keeps its operation)

    def superseded(self) -> bool:
        with self.platform.store.session() as db:
            return db.get(Tenant, self.tenant.id).generation != self.generation

    def step(self, name: str, state: str, detail: str = "") -> None:
        """The step's progress moved to `state`, written when that changes it (done stays done); a step done
        starts the backoff again: a long copy's retries do not delay the switch after it."""
        steps = [dict(s) for s in self.record.progress or []]
        for s in steps:
            if s["name"] == name and (s["state"], s["detail"]) != (state, detail) and s["state"] != "done":
                stamp = now().isoformat()
                s.update(state=state, detail=detail,
                         **({"started_at": s["started_at"] or stamp} if state == "running" else {"finished_at": stamp}))
                self.keep(progress=steps, **({"attempts": 0} if state == "done" else {}))
        if state == "done":
            self.skip.add(name)

    def step_age(self, name: str) -> float:
        """Seconds since the step first started (it survives worker restarts)."""
        started = next((s["started_at"] for s in self.record.progress or [] if s["name"] == name), None)
        return (now() - datetime.fromisoformat(started)).total_seconds() if started else 0.0

    def mark_server(self, server: DbServer, status: str) -> None:
        if server.status != status:
            with self.platform.store.session() as db:
                db.get(DbServer, server.id).status = status

    def complete(self) -> None:
        self.finish(self.kind, service.SUSPENDED if self.kind == "suspended" else "")

    def fail(self, step: str, message: str) -> None:
        self.finish("failed", message, f"failed at {step}: {message}")

    def finish(self, status: str, detail: str = "", event: str = "") -> None:
        if self.save(status=status, status_detail=detail, observed_generation=self.generation,
                       attempts=0, lease_until=None):
            with self.platform.store.session() as db:
                service.record(db, self.tenant, status, event or f"instance {status}")

    def retry(self, message: str, delay: float) -> None:
        """Again after `delay`, doubled with each attempt, at most a minute."""
        attempts = self.record.attempts
        self.keep(**{self.message: message}, attempts=attempts + 1, lease_until=None,
                  next_attempt_at=now() + timedelta(seconds=min(delay * 2 ** min(attempts, 8), 60)))
