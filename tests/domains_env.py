"""Custom domains' test servers, built by testbed/domains/build.sh: `dns_server`, a real CoreDNS serving
test zones from files the tests rewrite, and `acme_server`, a factory of real Pebble ACME servers (Let's
Encrypt's test CA) that resolve names through that CoreDNS and validate HTTP-01 on the port a test gives
(its Traefik's `web` entry point)."""
import json
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import httpx
import pytest

from odoosaas.pg.clusters import free_port
from tests.conftest import scratch_dir

BUILD = Path(__file__).resolve().parents[1] / "testbed" / "domains" / "build.sh"
ZONES = ("example.test", "acme-corp.test")  # the session's CoreDNS is authoritative for these
RELOAD = "200ms"  # how often CoreDNS looks at a zone file's SOA serial (the file plugin has no minimum)


def build_domain_servers() -> SimpleNamespace:
    done = subprocess.run([str(BUILD)], capture_output=True, text=True)
    if done.returncode:
        pytest.fail(f"testbed/domains/build.sh failed: {done.stderr.strip()[-2000:]}")
    coredns, pebble, certs = done.stdout.split()[-3:]
    return SimpleNamespace(coredns=coredns, pebble=pebble, certs=Path(certs))


def free_dns_port() -> int:
    """A loopback port free for both UDP and TCP (DNS answers on both)."""
    for _ in range(50):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise AssertionError("no port free for both UDP and TCP")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def started(argv: list[str], log: Path, ready, what: str, env: dict | None = None,
            timeout: float = 15) -> subprocess.Popen:
    """Start a server, logging into `log`, and wait until `ready()` is true (or fail with its log)."""
    with open(log, "ab") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=log.parent)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{what} exited: {log.read_text()[-2000:]}")
        if ready():
            return process
        time.sleep(0.05)
    stop(process)
    raise AssertionError(f"{what} not ready in {timeout} s: {log.read_text()[-2000:]}")


class DnsServer:
    """CoreDNS authoritative for `zones`, one zone file each (the `file` plugin, reloaded when the SOA
    serial changes); any name outside them is NXDOMAIN. `set_records` rewrites a zone, `wait_resolves`
    waits until CoreDNS serves the change."""

    def __init__(self, binary: str, folder: Path, zones=ZONES):
        self.folder, self.zones, self.port = folder, [zone.rstrip(".").lower() for zone in zones], free_dns_port()
        self.host, self.address = "127.0.0.1", f"127.0.0.1:{self.port}"
        self.serial = int(time.time())
        for zone in self.zones:
            self.set_records(zone, [])
        blocks = [f"{zone}.:{self.port} {{\n  bind 127.0.0.1\n  file {self._file(zone)} {{\n"
                  f"    reload {RELOAD}\n  }}\n}}\n" for zone in self.zones]
        # the root block answers for everything else: NXDOMAIN, as the internet answers an unknown name
        blocks.append(f".:{self.port} {{\n  bind 127.0.0.1\n  template ANY ANY {{\n    rcode NXDOMAIN\n  }}\n}}\n")
        (folder / "Corefile").write_text("".join(blocks))
        self.process = started([binary, "-conf", str(folder / "Corefile")], folder / "coredns.log",
                               lambda: self._answers(f"{self.zones[0]}.", "SOA") is not None, "CoreDNS")

    def _file(self, zone: str) -> Path:
        return self.folder / f"db.{zone}"

    def set_records(self, zone: str, records) -> None:
        """Replace the zone's records by `records`: (name, type, value) with `name` relative to the zone
        ("@", "erp", "_odoosaas-challenge.erp") or absolute ("erp.example.test."); TXT values unquoted."""
        zone = zone.rstrip(".").lower()
        assert zone in self.zones, f"{zone} is not one of this server's zones {self.zones}"
        self.serial += 1  # CoreDNS reloads a zone file only when its serial changes
        lines = [f"$ORIGIN {zone}.", "$TTL 1",
                 f"@ IN SOA ns1.{zone}. hostmaster.{zone}. {self.serial} 60 60 600 1",
                 f"@ IN NS ns1.{zone}.", "ns1 IN A 127.0.0.1"]
        for name, rtype, value in records:
            if rtype.upper() == "TXT" and not value.startswith('"'):
                value = json.dumps(value)  # a quoted character-string
            lines.append(f"{name} IN {rtype.upper()} {value}")
        staged = self._file(zone).with_suffix(".tmp")
        staged.write_text("\n".join(lines) + "\n")
        staged.replace(self._file(zone))  # CoreDNS never reads half a file

    def _answers(self, name: str, rtype: str) -> list[str] | None:
        """The answer's values as CoreDNS gives them now ([] for NXDOMAIN or no data); None: no answer."""
        query = dns.message.make_query(name, rtype)
        try:
            response = dns.query.udp(query, self.host, port=self.port, timeout=1)
        except (dns.exception.Timeout, OSError):
            return None
        if response.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            return None
        wanted = dns.rdatatype.from_text(rtype)
        return sorted(rdata.to_text().strip('"') if wanted == dns.rdatatype.TXT else rdata.to_text()
                      for rrset in response.answer if rrset.rdtype == wanted for rdata in rrset)

    def rcode(self, name: str, rtype: str = "A") -> str:
        """The response code as text: NOERROR, NXDOMAIN..."""
        query = dns.message.make_query(name if name.endswith(".") else f"{name}.", rtype)
        return dns.rcode.to_text(dns.query.udp(query, self.host, port=self.port, timeout=2).rcode())

    def resolve(self, name: str, rtype: str = "A") -> list[str]:
        answers = self._answers(name if name.endswith(".") else f"{name}.", rtype)
        assert answers is not None, f"CoreDNS at {self.address} did not answer"
        return answers

    def wait_resolves(self, name: str, rtype: str, expected, timeout: float = 10) -> None:
        """Wait until `name` has exactly `expected` (a value or a list; [] or None: nothing) as `rtype`."""
        want = sorted([expected] if isinstance(expected, str) else expected or [])
        deadline, seen = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            seen = self.resolve(name, rtype)
            if seen == want:
                return
            time.sleep(0.05)
        raise AssertionError(f"{name} {rtype} is {seen}, not {want}, after {timeout} s")

    def close(self) -> None:
        stop(self.process)


class Pebble:
    """A Pebble ACME server: its directory over TLS (trust `minica_path`), HTTP-01 checked on
    `http_port` and TLS-ALPN-01 on `tls_port` of the address the DNS server gives for a name."""

    def __init__(self, binary: str, certs: Path, folder: Path, dns_address: str, http_port: int,
                 tls_port: int = 0, env: dict | None = None):
        self.port, self.management_port = free_port(), free_port()
        self.http_port, self.tls_port = http_port, tls_port or free_port()
        self.directory_url = f"https://127.0.0.1:{self.port}/dir"
        self.management_url = f"https://127.0.0.1:{self.management_port}"
        self.minica_path = str(certs / "pebble.minica.pem")
        config = {"pebble": {
            "listenAddress": f"127.0.0.1:{self.port}", "managementListenAddress": f"127.0.0.1:{self.management_port}",
            "certificate": str(certs / "localhost" / "cert.pem"), "privateKey": str(certs / "localhost" / "key.pem"),
            "httpPort": self.http_port, "tlsPort": self.tls_port, "ocspResponderURL": "",
            "externalAccountBindingRequired": False, "retryAfter": {"authz": 1, "order": 1},
            "keyAlgorithm": "ecdsa",
            "profiles": {"default": {"description": "90 days, as Let's Encrypt", "validityPeriod": 7776000}}}}
        (folder / "pebble-config.json").write_text(json.dumps(config, indent=2))
        # no random validation sleeps, no random bad nonces: the tests' timings stay steady
        environment = {"PATH": "/usr/bin:/bin", "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0", **(env or {})}
        self.process = started([binary, "-config", str(folder / "pebble-config.json"), "-dnsserver", dns_address],
                               folder / f"pebble-{self.port}.log", self._ready, "Pebble", environment)

    def _get(self, url: str) -> httpx.Response:
        return httpx.get(url, verify=ssl.create_default_context(cafile=self.minica_path), timeout=5)

    def _ready(self) -> bool:
        try:
            return self._get(self.directory_url).status_code == 200
        except httpx.HTTPError:
            return False

    def issued_roots_pem(self) -> str:
        """The root and intermediate of the certificates this Pebble issues (new at every start)."""
        pems = [self._get(f"{self.management_url}/{kind}/0") for kind in ("roots", "intermediates")]
        for response in pems:
            response.raise_for_status()
        return "".join(response.text for response in pems)

    def close(self) -> None:
        stop(self.process)


@pytest.fixture(scope="session")
def domain_servers():
    return build_domain_servers()


@pytest.fixture(scope="session")
def dns_server(domain_servers):
    """CoreDNS for the session, authoritative for ZONES (all empty at first)."""
    folder = scratch_dir()
    server = DnsServer(domain_servers.coredns, folder)
    yield server
    server.close()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def acme_server(domain_servers, dns_server):
    """`acme_server(http_port, tls_port=0, env=None)`: a Pebble resolving through `dns_server` and
    validating HTTP-01 on `http_port` (the test's Traefik `web` entry point); all stop at session end."""
    folder, servers = scratch_dir(), []

    def start(http_port: int, tls_port: int = 0, env: dict | None = None) -> Pebble:
        servers.append(Pebble(domain_servers.pebble, domain_servers.certs, folder, dns_server.address,
                              http_port, tls_port, env))
        return servers[-1]

    yield start
    for server in servers:
        server.close()
    shutil.rmtree(folder, ignore_errors=True)
