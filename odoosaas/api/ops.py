"""Health, readiness and Prometheus metrics."""
import time

from flask import Response, g, request
from flask_openapi3 import APIBlueprint, Tag
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from odoosaas.api import fails, platform, schemas
from odoosaas.store.models import Tenant
from odoosaas.tenants import fleet

bp = APIBlueprint("ops", __name__, abp_tags=[Tag(name="operations")], abp_responses=fails())
registry = CollectorRegistry()
REQUESTS = Counter("odoosaas_http_requests", "HTTP requests", ["method", "endpoint", "status"], registry=registry)
LATENCY = Histogram("odoosaas_http_request_seconds", "HTTP request latency", ["endpoint"], registry=registry)
TENANTS = Gauge("odoosaas_tenants", "Tenants by status", ["status"], registry=registry)


@bp.get("/healthz", responses={200: schemas.Health})
def healthz():
    return {"status": "ok"}


@bp.get("/readyz", responses={200: schemas.Health, 503: schemas.Health})
def readyz():
    problems = {}
    for name, check in (("store", platform().store.ping), ("driver", platform().driver.ping)):
        try:
            check()
        except Exception as exc:  # readiness reports any failure as 503, never raises
            problems[name] = type(exc).__name__
    return ({"status": "ok"}, 200) if not problems else ({"status": "unavailable", "failing": problems}, 503)


@bp.get("/metrics", responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})
def metrics():
    with platform().store.session() as db:
        TENANTS.clear()
        for status, number in fleet.counts(db, Tenant.status).items():
            TENANTS.labels(status).set(number)
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


@bp.before_app_request
def start_timer():
    g.started = time.perf_counter()


@bp.after_app_request
def observe(response):
    endpoint = request.url_rule.rule if request.url_rule else "unmatched"
    REQUESTS.labels(request.method, endpoint, response.status_code).inc()
    if "started" in g:
        LATENCY.labels(endpoint).observe(time.perf_counter() - g.started)
    return response
