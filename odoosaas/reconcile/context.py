"""What one reconcile pass knows about its tenant, and how it writes back what it saw."""
from datetime import datetime, timedelta

from sqlalchemy import update

from odoosaas.apps import Spec
from odoosaas.pg import ops
from odoosaas.store.models import DbServer, Tenant, now
from odoosaas.tenants import rules, service


class Context:
    def __init__(self, platform, tenant: Tenant):
        self.platform, self.tenant = platform, tenant
        self.generation = tenant.generation
        self.secrets = platform.box.open(tenant.secrets)
        self.resources = rules.Resources(**tenant.resources)

    def server(self, server_id: str) -> DbServer:
        with self.platform.store.session() as db:
            return db.get(DbServer, server_id)

    def spec(self) -> Spec:
        t = self.tenant
        server = self.server(t.db_server_id)
        name = ops.names(t.subdomain)
        database = {"host": server.host, "port": server.port, "dbname": name, "user": name,
                    "password": self.secrets["db_password"]}
        return Spec(tenant_id=t.id, subdomain=t.subdomain, app=t.app, tier=t.tier, resources=self.resources,
                    database=database, admin_email=t.admin_email, admin_password=self.secrets["admin_password"],
                    url=service.planned_url(self.platform.settings, t.subdomain))

    def _write(self, **values) -> bool:
        """Write tenant fields unless the user changed the desired state meanwhile."""
        with self.platform.store.session() as db:
            done = db.execute(update(Tenant).where(Tenant.id == self.tenant.id, Tenant.generation == self.generation)
                              .values(updated_at=now(), **values))
        for key, value in values.items():
            setattr(self.tenant, key, value)
        return done.rowcount == 1

    def save(self, **values) -> None:
        self._write(**values)

    def superseded(self) -> bool:
        with self.platform.store.session() as db:
            return db.get(Tenant, self.tenant.id).generation != self.generation

    def step(self, name: str, state: str, detail: str = "") -> None:
        steps = [dict(s) for s in self.tenant.progress or []]
        for s in steps:
            if s["name"] == name and (s["state"], s["detail"]) != (state, detail) and s["state"] != "done":
                stamp = now().isoformat()
                s.update(state=state, detail=detail,
                         **({"started_at": s["started_at"] or stamp} if state == "running" else {"finished_at": stamp}))
                self._write(progress=steps)
                return

    def step_age(self, name: str) -> float:
        """Seconds since the step first started (it survives worker restarts)."""
        started = next((s["started_at"] for s in self.tenant.progress if s["name"] == name), None)
        return (now() - datetime.fromisoformat(started)).total_seconds() if started else 0.0

    def mark_server(self, server: DbServer, status: str) -> None:
        if server.status != status:
            with self.platform.store.session() as db:
                db.get(DbServer, server.id).status = status

    def finish(self, status: str, detail: str = "", event: str = "") -> None:
        if self._write(status=status, status_detail=detail, observed_generation=self.generation,
                       attempts=0, lease_until=None):
            with self.platform.store.session() as db:
                service.record(db, self.tenant, status, event or f"instance {status}")

    def retry(self, message: str, delay: float) -> None:
        self._write(status_detail=message, attempts=self.tenant.attempts + 1,
                    next_attempt_at=now() + timedelta(seconds=delay), lease_until=None)
