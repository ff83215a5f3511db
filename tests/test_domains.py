"""Custom domains (FE-5): claims and their validation through the API, ownership, and the proof, route and
certificate end to end with real servers: CoreDNS as the resolver, Pebble as the ACME CA, Traefik."""
import pytest

from odoosaas.tenants import domains


@pytest.fixture
def tenant(alice):
    return alice.create("acme").json["tenant"]["id"]


def test_a_claim_answers_the_records_to_create(alice, tenant):
    answer = alice.post(f"/api/v1/tenants/{tenant}/domains", json={"name": "ERP.Acme-Corp.com."})
    assert answer.status_code == 201
    domain = answer.json["domain"]
    assert domain["name"] == "erp.acme-corp.com" and domain["status"] == "pending"
    txt, cname = domain["records"]
    assert txt["type"] == "TXT" and txt["name"] == "_odoosaas-challenge.erp.acme-corp.com" and len(txt["value"]) >= 32
    assert cname == {"type": "CNAME", "name": "erp.acme-corp.com", "value": "acme.localhost"}
    assert domain["certificate"] == {"status": "none", "expires_at": None}
    listed = alice.get(f"/api/v1/tenants/{tenant}/domains").json["items"]
    assert [d["name"] for d in listed] == ["erp.acme-corp.com"]


@pytest.mark.parametrize("name", ["192.168.1.10", "10.0.0.1.", "shop.localhost", "localhost", "a..b.com", "-a.com",
                                  "a.com-", "abcd.com\n", "exa mple.com", "x" * 64 + ".com", "erp", "erp.123", "::1", ""])
def test_bad_names_are_400_and_change_nothing(alice, tenant, name):
    answer = alice.post(f"/api/v1/tenants/{tenant}/domains", json={"name": name})
    assert answer.status_code == 400 and answer.json["error"]["fields"].get("name"), answer.json
    assert alice.get(f"/api/v1/tenants/{tenant}/domains").json["items"] == []


def test_a_domain_is_claimed_once_across_customers_in_any_case(alice, bob, tenant):
    assert alice.post(f"/api/v1/tenants/{tenant}/domains", json={"name": "shop.example.org"}).status_code == 201
    other = bob.create("bobshop").json["tenant"]["id"]
    taken = bob.post(f"/api/v1/tenants/{other}/domains", json={"name": "SHOP.example.org"})
    assert taken.status_code == 409 and taken.json["error"]["code"] == "domain_taken"


def test_another_customers_tenant_and_domains_are_404(alice, bob, tenant):
    alice.post(f"/api/v1/tenants/{tenant}/domains", json={"name": "shop.example.org"})
    for call in (bob.get(f"/api/v1/tenants/{tenant}/domains"),
                 bob.post(f"/api/v1/tenants/{tenant}/domains", json={"name": "other.example.org"}),
                 bob.delete(f"/api/v1/tenants/{tenant}/domains/shop.example.org")):
        assert call.status_code == 404
    assert [d["name"] for d in alice.get(f"/api/v1/tenants/{tenant}/domains").json["items"]] == ["shop.example.org"]


def test_deleting_a_domain_or_the_tenant_frees_the_name(alice, bob, tenant):
    alice.post(f"/api/v1/tenants/{tenant}/domains", json={"name": "shop.example.org"})
    assert alice.delete(f"/api/v1/tenants/{tenant}/domains/shop.example.org").status_code == 204
    assert alice.delete(f"/api/v1/tenants/{tenant}/domains/shop.example.org").status_code == 404
    alice.post(f"/api/v1/tenants/{tenant}/domains", json={"name": "shop.example.org"})
    assert alice.delete(f"/api/v1/tenants/{tenant}").status_code == 202
    other = bob.create("bobshop").json["tenant"]["id"]
    assert bob.post(f"/api/v1/tenants/{other}/domains", json={"name": "shop.example.org"}).status_code == 201


def test_the_schema_and_the_server_agree_on_host_names():
    import re
    for name in ("a.co", "erp.acme.com", "xn--bcher-kva.example", "Erp.Acme.COM."):
        assert re.fullmatch(domains.HOSTNAME, name), name
    for name in ("1.2.3.4", "a", "a.b-", "a_b.com", "a.com..", "é.com"):
        assert not re.fullmatch(domains.HOSTNAME, name), name


# End to end: CoreDNS is the platform's resolver, Pebble its ACME CA, Traefik its edge; the worker runs.


@pytest.fixture
def edge(workdir, dns_server, acme_server):
    import threading

    from odoosaas.pg.clusters import free_port
    from odoosaas.reconcile.worker import Worker
    from tests.conftest import make_app
    http_port, tls_port = free_port(), free_port()
    pebble = acme_server(http_port)
    app = make_app(workdir, traefik_port=http_port, traefik_tls_port=tls_port, acme_server=pebble.directory_url,
                   acme_ca_file=pebble.minica_path, acme_email="ops@example.com", dns_resolvers=dns_server.address,
                   domain_check_seconds=1)
    platform = app.extensions["odoosaas"]
    assert platform.driver.start_edge()
    stop = threading.Event()
    worker = threading.Thread(target=Worker(platform).run, args=(stop,), daemon=True)
    worker.start()
    yield app, pebble, http_port, tls_port
    stop.set()
    worker.join(30)
    platform.driver.close()
    platform.store.dispose()


def wait_for(probe, what: str, timeout: float = 60):
    import time
    deadline = time.monotonic() + timeout
    while not (seen := probe()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.2)
    return seen


def fetch(port: int, host: str, scheme: str = "http", roots: str = ""):
    """A request to the local Traefik for `host` (SNI too over HTTPS, checked against `roots`), as a
    client whose DNS sends the name to the loopback would make it; None when it cannot connect."""
    import ssl

    import httpx
    verify = ssl.create_default_context(cadata=roots) if roots else False
    try:
        with httpx.Client(verify=verify, timeout=5) as client:
            return client.get(f"{scheme}://127.0.0.1:{port}/", headers={"Host": host},
                              extensions={"sni_hostname": host} if scheme == "https" else {})
    except httpx.HTTPError:
        return None


def test_a_proven_domain_is_routed_over_https_with_a_certificate(edge, dns_server):
    import ssl
    import time

    import httpx
    app, pebble, http_port, tls_port = edge
    alice = __import__("tests.conftest", fromlist=["Caller"]).Caller(app.test_client(), "alice@example.com")
    tenant = alice.create("acme").json["tenant"]["id"]
    wait_for(lambda: alice.get(f"/api/v1/tenants/{tenant}").json["tenant"]["status"] == "running", "running")
    domain = alice.post(f"/api/v1/tenants/{tenant}/domains", json={"name": "erp.example.test"}).json["domain"]
    state = lambda: alice.get(f"/api/v1/tenants/{tenant}/domains").json["items"][0]  # noqa: E731
    wait_for(lambda: state()["checked_at"], "a first check")
    assert state()["status"] == "pending" and fetch(http_port, "erp.example.test").status_code == 404

    txt = domain["records"][0]  # proven before the name points here: the first certificate order fails ...
    dns_server.set_records("example.test", [(txt["name"] + ".", "TXT", txt["value"])])
    wait_for(lambda: state()["status"] == "verified", "verification")
    roots = pebble.issued_roots_pem()
    time.sleep(3)
    assert fetch(tls_port, "erp.example.test", "https", roots) is None, "no certificate without the address"
    dns_server.set_records("example.test", [("erp", "A", "127.0.0.1"), (txt["name"] + ".", "TXT", txt["value"])])
    # ... and the route is written anew (10 checks later), so Traefik asks again
    page = wait_for(lambda: fetch(tls_port, "erp.example.test", "https", roots), "HTTPS with Pebble's certificate")
    assert page.status_code == 200 and "<h1>acme</h1>" in page.text
    certificate = wait_for(lambda: state()["certificate"]["expires_at"] and state()["certificate"], "certificate")
    assert certificate["status"] == "issued"
    redirect = wait_for(lambda: (r := fetch(http_port, "erp.example.test")) and r.is_redirect and r, "redirect")
    assert redirect.headers["location"].startswith("https://erp.example.test")
    with pytest.raises(httpx.ConnectError), httpx.Client(verify=ssl.create_default_context()) as client:
        client.get(f"https://127.0.0.1:{tls_port}/", headers={"Host": "erp.example.test"},
                   extensions={"sni_hostname": "erp.example.test"})  # nobody else's root signs it

    dns_server.set_records("example.test", [("erp", "A", "127.0.0.1")])  # the proof goes away ...
    from odoosaas.store.models import Domain
    with app.extensions["odoosaas"].store.session() as db:  # ... and a day passes before the next check
        row = db.get(Domain, "erp.example.test")
        row.checked_at = row.checked_at.replace(year=row.checked_at.year - 1)
    wait_for(lambda: state()["status"] == "failing", "the warning")
    assert fetch(tls_port, "erp.example.test", "https", roots).status_code == 200  # a warning, not an outage

    assert alice.delete(f"/api/v1/tenants/{tenant}/domains/erp.example.test").status_code == 204
    wait_for(lambda: (r := fetch(http_port, "erp.example.test")) and r.status_code == 404, "the route removed")
