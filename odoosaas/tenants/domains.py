"""Custom domains (FE-5): a claim, its proof by a TXT record, and its route and certificate once proven.

The worker's sweep proves pending domains and re-proves proven ones daily; one whose record
disappeared is `failing` (the customer is warned) yet stays routed: a DNS hiccup must not take a
site down, and its owner proved control once. A change that alters routes runs the tenant's plan again."""
import base64
import ipaddress
import json
import re
import secrets
from datetime import timedelta

import dns.exception
import dns.nameserver
import dns.resolver
from cryptography import x509
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from odoosaas.errors import Conflict, Invalid, NotFound
from odoosaas.store.models import Domain, Tenant, now
from odoosaas.tenants import service

CHALLENGE = "_odoosaas-challenge"
# the API's schema says the same (any case, a final dot allowed); the last label is not a number
HOSTNAME = r"^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?$"
RECHECK = timedelta(days=1)  # a proven domain's proof; a missing certificate: every 10 checks


def name_problem(name: str) -> str:
    """What is wrong with a host name's shape (the API's schema says the same), or ""."""
    if 4 <= len(name) <= 254 and re.fullmatch(HOSTNAME, name):
        return ""
    try:
        ipaddress.ip_address(name)
        return "is an IP address, not a domain name"
    except ValueError:
        return "is not a valid host name (e.g. erp.example.com)"


def claim(platform, user, tenant_id: str, name: str) -> dict:
    """A claim of `name`, whose shape the request's model checked (name_problem); not under the base domain."""
    name, base = name.lower().removesuffix("."), platform.settings.base_domain
    if name == base or name.endswith("." + base):
        problem = f"is under the platform's own domain ({base})"
        raise Invalid(f"The domain {problem}.", fields={"name": problem})
    try:
        with service.changing(platform, user, tenant_id) as (db, tenant):
            domain = Domain(name=name, tenant_id=tenant.id, token=secrets.token_urlsafe(24))
            db.add(domain)
    except IntegrityError:  # the name is the key: claimed already, maybe just now by someone else
        raise Conflict("This domain is already claimed.", "domain_taken") from None
    return public(domain, tenant, platform.settings)


def listed(platform, user, tenant_id: str) -> list[dict]:
    with platform.store.session() as db:
        tenant = service.owned(db, user, tenant_id)
        rows = db.scalars(select(Domain).where(Domain.tenant_id == tenant.id).order_by(Domain.created_at))
        return [public(domain, tenant, platform.settings) for domain in rows]


def remove(platform, user, tenant_id: str, name: str) -> None:
    with service.changing(platform, user, tenant_id) as (db, tenant):
        domain = db.get(Domain, name.lower().removesuffix("."))
        if domain is None or domain.tenant_id != tenant.id:
            raise NotFound("No such domain on this instance.")
        db.delete(domain)
        service.rerun(db, tenant, f"removing {domain.name}")


def public(domain: Domain, tenant: Tenant, settings) -> dict:
    checked, expires = domain.checked_at, domain.certificate_expires_at
    return {"name": domain.name, "status": domain.status, "checked_at": checked and checked.isoformat(),
            "records": [{"type": "TXT", "name": f"{CHALLENGE}.{domain.name}", "value": domain.token},
                        {"type": "CNAME", "name": domain.name, "value": f"{tenant.subdomain}.{settings.base_domain}"}],
            "certificate": {"status": "issued" if expires else "none", "expires_at": expires and expires.isoformat()}}


def routed(db, tenant_id: str) -> dict[str, bool]:
    """The tenant's proven domains, each with whether it has a certificate (then HTTP redirects)."""
    rows = db.scalars(select(Domain).where(Domain.tenant_id == tenant_id, Domain.status != "pending")
                      .order_by(Domain.created_at))  # the first is the primary one
    return {domain.name: domain.certificate_expires_at is not None for domain in rows.all()}


def proven(domain: Domain, settings) -> bool | None:
    """Whether the challenge record holds the token, asked of the system's resolvers or those of
    ODOOSAAS_DNS_RESOLVERS (`ip[:port]`, comma-separated); None when DNS could not tell (try again later)."""
    resolver = dns.resolver.Resolver(configure=not settings.dns_resolvers)
    for host, _, port in (item.strip().partition(":") for item in settings.dns_resolvers.split(",") if item.strip()):
        resolver.nameservers = [*resolver.nameservers, dns.nameserver.Do53Nameserver(host, int(port or 53))]
    try:
        answer = resolver.resolve(f"{CHALLENGE}.{domain.name}", "TXT", lifetime=5)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return False
    except dns.exception.DNSException:
        return None
    return any(b"".join(record.strings).decode(errors="replace") == domain.token for record in answer)


def certificates(path) -> dict:
    """Domain -> expiry of each certificate in the storage file of Traefik's ACME resolver."""
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {item["domain"]["main"]: x509.load_pem_x509_certificate(base64.b64decode(item["certificate"]))
            .not_valid_after_utc for section in stored.values() for item in section.get("Certificates") or []}


def sweep(platform) -> None:
    """Prove what is due (DNS outside any transaction), note certificates, route what changed."""
    with platform.store.session() as db:
        claimed = db.scalars(select(Domain)).all()
    local = platform.settings.driver == "local"  # Kubernetes' Traefik keeps its certificates to itself
    issued = certificates(platform.settings.data_dir / "acme.json") if local else {}
    for old in claimed:
        uncertified = local and old.status != "pending" and not old.certificate_expires_at  # Traefik will not retry
        due = old.status == "pending" or not old.checked_at or now() - old.checked_at > (
            timedelta(seconds=10 * platform.settings.domain_check_seconds) if uncertified else RECHECK)
        proof, certificate = proven(old, platform.settings) if due else None, issued.get(old.name)
        if proof is None and certificate == old.certificate_expires_at:
            continue
        with platform.store.session() as db:
            row = db.get(Domain, old.name)
            if row is None or row.token != old.token:  # removed, or claimed anew, meanwhile
                continue
            row.certificate_expires_at = certificate
            if proof is not None:  # without the record, a pending domain stays pending and a proven one is failing
                row.checked_at = now()
                row.status = "verified" if proof else "failing" if old.status != "pending" else "pending"
            if routing(old) != routing(row) or uncertified and proof and not row.certificate_expires_at:
                service.rerun(db, db.get(Tenant, row.tenant_id), f"routing {row.name}")
    platform.wake()


def routing(domain: Domain) -> tuple[bool, bool]:
    return domain.status != "pending", domain.certificate_expires_at is not None
