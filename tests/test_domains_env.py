"""Custom domains end to end on the real test servers (issue 15): a name the test's CoreDNS points at the
loopback gets a certificate from Pebble through Traefik's ACME resolver (HTTP-01 on the `web` entry point),
and the backend answers over HTTPS on it. This is the Traefik configuration the product writes:

static (flags):  --entryPoints.web.address=:80  --entryPoints.websecure.address=:443
                 --certificatesResolvers.<resolver>.acme.caServer=<ACME directory URL>
                 --certificatesResolvers.<resolver>.acme.storage=<file; Traefik creates it 0600>
                 --certificatesResolvers.<resolver>.acme.httpChallenge.entryPoint=web
                 (env LEGO_CA_CERTIFICATES=<PEM> only for a test CA such as Pebble)
dynamic (file):  a router on websecure with `tls.certResolver: <resolver>`, and one on web redirecting
                 to https; Traefik's own acme-http router (highest priority) still answers the challenge.
"""
import http.client
import os
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from odoosaas.pg.clusters import free_port
from tests.domains_env import stop

RESOLVER = "pebble"
FAILED = "Unable to obtain ACME certificate"  # what Traefik logs when an issuance fails


class Backend(BaseHTTPRequestHandler):
    """The tenant's app, reduced to saying which host and path it was asked for."""

    def do_GET(self):
        body = f"backend: {self.headers['Host']} {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def backend():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Backend)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_port
    server.shutdown()
    server.server_close()


def traefik_binary() -> str:
    binary = Path(os.environ.get("ODOOSAAS_CACHE", Path.home() / ".cache" / "odoosaas")) / "bin" / "traefik"
    assert binary.exists(), "no Traefik binary: run testbed/traefik/build.sh (make traefik)"
    return str(binary)


class Edge:
    """A Traefik with `web` (HTTP, where Pebble checks HTTP-01) and `websecure` entry points, an ACME resolver
    on the given Pebble, and a file provider whose routes `route` writes."""

    def __init__(self, folder: Path, pebble, web: int, websecure: int):
        self.folder, self.web, self.websecure = folder, web, websecure
        self.routes, self.storage, self.log = folder / "dynamic", folder / "acme.json", folder / "traefik.log"
        self.routes.mkdir()
        acme = f"--certificatesResolvers.{RESOLVER}.acme"
        self.argv = [traefik_binary(), f"--entryPoints.web.address=127.0.0.1:{web}",
                     f"--entryPoints.websecure.address=127.0.0.1:{websecure}",
                     f"{acme}.caServer={pebble.directory_url}", f"{acme}.storage={self.storage}",
                     f"{acme}.httpChallenge.entryPoint=web",
                     f"--providers.file.directory={self.routes}", "--providers.file.watch=true",
                     "--providers.providersThrottleDuration=100ms", "--log.level=INFO", "--log.noColor=true",
                     "--global.checkNewVersion=false", "--global.sendAnonymousUsage=false"]
        # lego (Traefik's ACME client) must trust Pebble's directory; only this Traefik is told to
        env = {"PATH": "/usr/bin:/bin", "LEGO_CA_CERTIFICATES": pebble.minica_path}
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 15
        while not self._listening():
            assert self.process.poll() is None and time.monotonic() < deadline, self.log.read_text()[-2000:]
            time.sleep(0.05)

    def _listening(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.websecure), timeout=1).close()
            return True
        except OSError:
            return False

    def route(self, name: str, host: str, backend_port: int) -> None:
        """What the product writes for a verified domain: HTTPS with a certificate from the resolver, and
        HTTP redirected to it. Written atomically: Traefik must never read half a file."""
        config = f"""http:
  routers:
    {name}:
      rule: "Host(`{host}`)"
      entryPoints: [websecure]
      service: {name}
      tls:
        certResolver: {RESOLVER}
    {name}-http:
      rule: "Host(`{host}`)"
      entryPoints: [web]
      service: {name}
      middlewares: [{name}-https]
  middlewares:
    {name}-https:
      redirectScheme:
        scheme: https
        port: "{self.websecure}"
        permanent: true
  services:
    {name}:
      loadBalancer:
        servers:
          - url: "http://127.0.0.1:{backend_port}"
"""
        staged = self.routes / f"{name}.tmp"
        staged.write_text(config)
        staged.replace(self.routes / f"{name}.yaml")

    def close(self) -> None:
        stop(self.process)


@pytest.fixture
def edge(tmp_path, acme_server):
    web, websecure = free_port(), free_port()
    pebble = acme_server(http_port=web, tls_port=websecure)
    edge = Edge(tmp_path, pebble, web, websecure)
    edge.pebble = pebble
    yield edge
    edge.close()


def https_get(dns_server, edge: Edge, host: str, trusted: ssl.SSLContext, path: str = "/"):
    """GET https://host/path as a browser would: the name resolved by the test's DNS server, the
    certificate checked for that name against `trusted`. Returns (status, body, peer certificate)."""
    address = dns_server.resolve(host, "A")[0]
    raw = socket.create_connection((address, edge.websecure), timeout=5)
    try:
        sock = trusted.wrap_socket(raw, server_hostname=host)
    except BaseException:
        raw.close()
        raise
    connection = http.client.HTTPSConnection(host, edge.websecure)
    connection.sock = sock  # already connected, with SNI and verification for `host`
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode(), sock.getpeercert()
    finally:
        connection.close()


def wait_for_certificate(dns_server, edge: Edge, host: str, trusted: ssl.SSLContext, timeout: float = 60):
    """Until Traefik presents a certificate `trusted` accepts for `host` (before: its default one)."""
    deadline, error = time.monotonic() + timeout, None
    failures = edge.log.read_text().count(FAILED)
    while time.monotonic() < deadline:
        if edge.log.read_text().count(FAILED) > failures:  # Traefik does not try again by itself
            raise AssertionError(f"Traefik could not get a certificate: {edge.log.read_text()[-3000:]}")
        try:
            return https_get(dns_server, edge, host, trusted, "/hello")
        except ssl.SSLError as failed:  # no TLS yet, then Traefik's default certificate
            error = failed
        time.sleep(0.1)
    raise AssertionError(f"no trusted certificate for {host} in {timeout} s ({error}): "
                         f"{edge.log.read_text()[-3000:]}")


def test_traefik_gets_a_certificate_from_pebble_for_a_name_the_dns_points_here(dns_server, edge, backend):
    host = "erp.example.test"
    dns_server.set_records("example.test", [("erp", "A", "127.0.0.1")])
    dns_server.wait_resolves(host, "A", "127.0.0.1")
    trusted = ssl.create_default_context(cadata=edge.pebble.issued_roots_pem())
    with pytest.raises(ssl.SSLError):  # no TLS router yet: websecure does not even speak TLS
        https_get(dns_server, edge, host, trusted)

    began = time.monotonic()
    edge.route("erp", host, backend)
    status, body, certificate = wait_for_certificate(dns_server, edge, host, trusted)
    issuance = time.monotonic() - began
    print(f"certificate for {host} served {issuance:.1f} s after its route was written")
    assert (status, body) == (200, f"backend: {host}:{edge.websecure} /hello")
    assert ("DNS", host) in certificate["subjectAltName"]
    issuer = dict(field for rdn in certificate["issuer"] for field in rdn)
    assert issuer["commonName"].startswith("Pebble Intermediate CA")
    assert issuance < 30

    redirect = httpx.get(f"http://127.0.0.1:{edge.web}/page?x=1", headers={"Host": host})
    assert redirect.status_code in (301, 308)
    assert redirect.headers["location"] == f"https://{host}:{edge.websecure}/page?x=1"
    assert host in edge.storage.read_text()  # kept for restarts and renewals, readable by Traefik only
    assert edge.storage.stat().st_mode & 0o077 == 0


def test_a_failed_issuance_is_retried_only_when_the_route_changes(dns_server, edge, backend):
    """The name does not resolve when the route appears: Pebble's HTTP-01 check fails and Traefik has
    no retry timer. Once the name resolves, a changed route (here: renamed) makes it try again."""
    host = "shop.acme-corp.test"
    dns_server.set_records("acme-corp.test", [])
    dns_server.wait_resolves(host, "A", [])
    trusted = ssl.create_default_context(cadata=edge.pebble.issued_roots_pem())
    edge.route("shop", host, backend)
    deadline = time.monotonic() + 15
    while FAILED not in edge.log.read_text():
        assert time.monotonic() < deadline, edge.log.read_text()[-3000:]
        time.sleep(0.1)

    dns_server.set_records("acme-corp.test", [("shop", "A", "127.0.0.1")])
    dns_server.wait_resolves(host, "A", "127.0.0.1")
    edge.route("shop", host, backend)  # the same file again: Traefik skips an unchanged configuration
    time.sleep(3)
    with pytest.raises(ssl.SSLCertVerificationError):
        https_get(dns_server, edge, host, trusted)

    (edge.routes / "shop.yaml").unlink()
    edge.route("shop-retry", host, backend)
    status, body, certificate = wait_for_certificate(dns_server, edge, host, trusted)
    assert (status, body) == (200, f"backend: {host}:{edge.websecure} /hello")
    assert ("DNS", host) in certificate["subjectAltName"]


def test_names_outside_the_zones_do_not_resolve(dns_server):
    """Pebble resolves through this server too: an unknown name must fail, not reach the internet."""
    assert dns_server.rcode("erp.acme.com") == "NXDOMAIN"
    assert dns_server.rcode("missing.example.test") == "NXDOMAIN"
    assert dns_server.rcode("example.test", "SOA") == "NOERROR"
    dns_server.set_records("example.test", [("_odoosaas-challenge.erp", "TXT", "token 1"),
                                            ("www", "CNAME", "erp.example.test.")])
    dns_server.wait_resolves("_odoosaas-challenge.erp.example.test", "TXT", "token 1")
    assert dns_server.resolve("www.example.test", "CNAME") == ["erp.example.test."]
