#!/usr/bin/env python3
"""A real Kubernetes control plane on loopback, with fake (kwok) nodes.

Processes (all plain child processes, each in its own process group, logs in
``WORKDIR/logs/``):

    kube etcd                  embedded etcd (go.etcd.io/etcd/server/v3/embed)
    kube apiserver             k8s.io/kubernetes/cmd/kube-apiserver
    kube controller-manager    k8s.io/kubernetes/cmd/kube-controller-manager
    kube scheduler             k8s.io/kubernetes/cmd/kube-scheduler
    kwok                       sigs.k8s.io/kwok/cmd/kwok (fakes nodes + pods)

Binaries come from ``build.sh`` (``${ODOOSAAS_CACHE:-~/.cache/odoosaas}/bin``).
Only the standard library and the ``openssl`` CLI are used.

Library use::

    from testbed import Testbed
    tb = Testbed(Path("/tmp/tb"))
    tb.start()                 # builds if needed (~6 min from nothing); ~9 s when cached
    tb.kubeconfig              # Path of an admin (system:masters) kubeconfig
    tb.server                  # "https://127.0.0.1:PORT"
    tb.api("GET", "/api/v1/nodes")   # small JSON helper, admin credentials
    tb.stop()

or ``with Testbed(path) as tb: ...``.

Manual use::

    python3 testbed/k8s/testbed.py up DIR     # start, print kubeconfig, wait for Ctrl-C/SIGTERM
    python3 testbed/k8s/testbed.py down DIR   # kill what a crashed `up` left (pids file)
"""

from __future__ import annotations

import atexit
import base64
import ctypes
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

SERVICE_CIDR = "10.96.0.0/16"
SERVICE_API_IP = "10.96.0.1"  # first IP of SERVICE_CIDR: the "kubernetes" Service
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
KWOK_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
ADMISSION_PLUGINS = ",".join([
    "NamespaceLifecycle", "LimitRanger", "ServiceAccount", "ResourceQuota",
    "PodSecurity", "DefaultStorageClass", "DefaultTolerationSeconds",
    "TaintNodesByCondition", "Priority", "NodeRestriction",
    "StorageObjectInUseProtection", "PersistentVolumeClaimResize", "RuntimeClass",
    "MutatingAdmissionWebhook", "ValidatingAdmissionWebhook",
    "ValidatingAdmissionPolicy",
])


class TestbedError(RuntimeError):
    pass


def cache_dir() -> Path:
    return Path(os.environ.get("ODOOSAAS_CACHE") or Path.home() / ".cache" / "odoosaas")


def free_ports(n: int) -> list[int]:
    """n distinct free TCP ports on 127.0.0.1 (held open together, then released)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _child_setup() -> None:
    """Runs in the child before exec: own process group, and die with the parent.

    PR_SET_PDEATHSIG fires when the *thread* that forked exits; start() the
    test bed from a thread that lives as long as you need the cluster.
    """
    os.setsid()
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        # SIGKILL, not SIGTERM: all children get it at once, and a SIGTERMed
        # kube-apiserver can hang in graceful shutdown once etcd is gone.
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class _Proc:
    def __init__(self, name: str, argv: list[str], log: Path, env: dict[str, str] | None = None):
        self.name = name
        self.argv = argv
        self.log = log
        with open(log, "ab") as f:
            f.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(argv)}\n".encode())
            f.flush()
            self.popen = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                preexec_fn=_child_setup, env=env, close_fds=True,
            )
        self.pid = self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, n: int = 30) -> str:
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.pid, sig)  # pgid == pid (setsid)
            except ProcessLookupError:
                return
            try:
                self.popen.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue


class Testbed:
    """Kubernetes control plane + kwok fake nodes, on 127.0.0.1, in ``workdir``.

    workdir layout: pki/ (CA, certs, keys), etcd/ (data), logs/*.log,
    *.kubeconfig, pids (for `testbed.py down`).
    """

    def __init__(self, workdir: Path | str, *, nodes: int = 3, build: bool = True,
                 bin_dir: Path | None = None, verbosity: int = 1):
        self.workdir = Path(workdir).resolve()
        self.nodes = [f"node-{i}" for i in range(1, nodes + 1)]
        self.build = build
        self.bin_dir = Path(bin_dir) if bin_dir else cache_dir() / "bin"
        self.verbosity = verbosity
        self.pki = self.workdir / "pki"
        self.logs = self.workdir / "logs"
        self.procs: list[_Proc] = []
        self.ports: dict[str, int] = {}
        self._server: str | None = None
        self._ssl: ssl.SSLContext | None = None
        self._atexit_registered = False

    # ------------------------------------------------------------------ API
    @property
    def kubeconfig(self) -> Path:
        """Admin kubeconfig (user `admin`, group `system:masters`), certs embedded."""
        return self.workdir / "admin.kubeconfig"

    @property
    def server(self) -> str:
        if self._server is None:
            raise TestbedError("test bed not started")
        return self._server

    @property
    def ca_file(self) -> Path:
        return self.pki / "ca.crt"

    @property
    def admin_cert(self) -> tuple[Path, Path]:
        return self.pki / "admin.crt", self.pki / "admin.key"

    def __enter__(self) -> "Testbed":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def start(self, timeout: float = 180.0) -> "Testbed":
        if self.procs:
            raise TestbedError("already started")
        if self.build:
            self._build()  # not counted in timeout: ~10 min from nothing
        t0 = time.monotonic()
        deadline = t0 + timeout
        for b in ("kube", "kwok"):
            if not (self.bin_dir / b).is_file():
                raise TestbedError(f"missing {self.bin_dir / b}; run {HERE / 'build.sh'}")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        self._make_pki()
        p = dict(zip(["etcd", "apiserver", "controller-manager", "scheduler"], free_ports(4)))
        self.ports = p
        self._server = f"https://127.0.0.1:{p['apiserver']}"
        self._write_kubeconfigs()
        if not self._atexit_registered:
            atexit.register(self.stop)
            self._atexit_registered = True
        try:
            self._spawn("etcd", self._argv_etcd())
            self._wait("etcd", lambda: self._http_ok(f"http://127.0.0.1:{p['etcd']}/health", b'"health":"true"'), deadline)
            self._spawn("kube-apiserver", self._argv_apiserver())
            self._wait("kube-apiserver /readyz", lambda: self._api_ok("/readyz"), deadline)
            self._spawn("kube-controller-manager", self._argv_controller_manager())
            self._spawn("kube-scheduler", self._argv_scheduler())
            self._spawn("kwok", self._argv_kwok())
            self._create_nodes()
            self._wait("kube-controller-manager healthz", lambda: self._http_ok(
                f"https://127.0.0.1:{p['controller-manager']}/healthz", b"ok", insecure=True), deadline)
            self._wait("kube-scheduler healthz", lambda: self._http_ok(
                f"https://127.0.0.1:{p['scheduler']}/healthz", b"ok", insecure=True), deadline)
            self._wait(f"nodes {','.join(self.nodes)} Ready", self._nodes_ready, deadline)
            # The serviceaccount controller must have run before pods can be created.
            self._wait("default/default ServiceAccount",
                       lambda: self._api_ok("/api/v1/namespaces/default/serviceaccounts/default"), deadline)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - t0
        return self

    def stop(self) -> None:
        """Terminate every process (whole process groups), newest first."""
        for proc in reversed(self.procs):
            proc.stop()
        self.procs = []
        try:
            (self.workdir / "pids").unlink()
        except OSError:
            pass

    def api(self, method: str, path: str, body: Any = None, *,
            content_type: str = "application/json", ok: tuple[int, ...] = ()) -> tuple[int, Any]:
        """Call the API server as admin. Returns (status, decoded JSON or text)."""
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, context=self._client_ssl(), timeout=30) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        try:
            out = json.loads(raw) if raw else None
        except ValueError:
            out = raw.decode(errors="replace")
        if ok and status not in ok:
            raise TestbedError(f"{method} {path}: HTTP {status}: {out}")
        return status, out

    # -------------------------------------------------------------- internals
    def _build(self) -> None:
        r = subprocess.run(["bash", str(HERE / "build.sh")], stdout=sys.stderr, stderr=sys.stderr)
        if r.returncode != 0:
            raise TestbedError(f"build.sh failed ({r.returncode})")

    def _openssl(self, *args: str) -> None:
        r = subprocess.run(["openssl", *args], cwd=self.pki, capture_output=True, text=True)
        if r.returncode != 0:
            raise TestbedError(f"openssl {' '.join(args)}: {r.stderr.strip()}")

    def _make_pki(self) -> None:
        """CA, serving cert, client certs, SA key pair. Kept across restarts of a workdir."""
        self.pki.mkdir(exist_ok=True)
        os.chmod(self.pki, 0o700)
        if not (self.pki / "sa.key").exists():
            self._openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "sa.key")
            self._openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub")
        # ca: cluster CA (serving + client certs); front-proxy-ca: requestheader
        # authentication (aggregated APIs; also lets controller-manager and
        # scheduler load a complete extension-apiserver-authentication ConfigMap).
        for ca, cn in (("ca", "odoosaas-testbed-ca"), ("front-proxy-ca", "odoosaas-testbed-front-proxy-ca")):
            if (self.pki / f"{ca}.crt").exists():
                continue
            (self.pki / f"{ca}.cnf").write_text(
                "[req]\ndistinguished_name=dn\nx509_extensions=v3_ca\nprompt=no\n"
                f"[dn]\nCN={cn}\n"
                "[v3_ca]\nbasicConstraints=critical,CA:TRUE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign\n"
                "subjectKeyIdentifier=hash\n")
            self._openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f"{ca}.key")
            self._openssl("req", "-x509", "-new", "-key", f"{ca}.key", "-config", f"{ca}.cnf",
                          "-days", "3650", "-out", f"{ca}.crt")
        sans = ("DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,"
                f"DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:{SERVICE_API_IP}")
        certs = {
            # name: (subject, extendedKeyUsage, subjectAltName)
            "apiserver": ("/CN=kube-apiserver", "serverAuth", sans),
            "admin": ("/O=system:masters/CN=admin", "clientAuth", None),
            "controller-manager": ("/CN=system:kube-controller-manager", "clientAuth", None),
            "scheduler": ("/CN=system:kube-scheduler", "clientAuth", None),
            # kwok writes node/pod status and node leases for many nodes: cluster admin.
            "kwok": ("/O=system:masters/CN=kwok-controller", "clientAuth", None),
            "front-proxy-client": ("/CN=front-proxy-client", "clientAuth", None),
        }
        for name, (subj, eku, san) in certs.items():
            ca = "front-proxy-ca" if name.startswith("front-proxy") else "ca"
            if (self.pki / f"{name}.crt").exists():
                continue
            ext = ("basicConstraints=critical,CA:FALSE\n"
                   "keyUsage=critical,digitalSignature,keyEncipherment\n"
                   f"extendedKeyUsage={eku}\n" + (f"subjectAltName={san}\n" if san else ""))
            (self.pki / f"{name}.ext").write_text(ext)
            self._openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f"{name}.key")
            self._openssl("req", "-new", "-key", f"{name}.key", "-subj", subj, "-out", f"{name}.csr")
            self._openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
                          "-CAcreateserial", "-days", "3650", "-sha256",
                          "-extfile", f"{name}.ext", "-out", f"{name}.crt")
        for f in self.pki.glob("*.key"):
            os.chmod(f, 0o600)

    def _write_kubeconfigs(self) -> None:
        ca = base64.b64encode((self.pki / "ca.crt").read_bytes()).decode()
        for user, path in (("admin", self.kubeconfig),
                           ("controller-manager", self.workdir / "controller-manager.kubeconfig"),
                           ("scheduler", self.workdir / "scheduler.kubeconfig"),
                           ("kwok", self.workdir / "kwok.kubeconfig")):
            crt = base64.b64encode((self.pki / f"{user}.crt").read_bytes()).decode()
            key = base64.b64encode((self.pki / f"{user}.key").read_bytes()).decode()
            text = (
                "apiVersion: v1\nkind: Config\n"
                "clusters:\n- name: testbed\n  cluster:\n"
                f"    server: {self.server}\n    certificate-authority-data: {ca}\n"
                f"users:\n- name: {user}\n  user:\n"
                f"    client-certificate-data: {crt}\n    client-key-data: {key}\n"
                f"contexts:\n- name: {user}@testbed\n  context:\n    cluster: testbed\n"
                f"    user: {user}\n    namespace: default\n"
                f"current-context: {user}@testbed\n"
            )
            tmp = path.with_suffix(".tmp")
            tmp.write_text(text)
            os.chmod(tmp, 0o600)
            tmp.replace(path)

    def _argv_etcd(self) -> list[str]:
        return [str(self.bin_dir / "kube"), "etcd", f"--data-dir={self.workdir / 'etcd'}",
                f"--listen=127.0.0.1:{self.ports['etcd']}"]

    def _argv_apiserver(self) -> list[str]:
        pki = self.pki
        return [
            str(self.bin_dir / "kube"), "apiserver",
            f"--etcd-servers=http://127.0.0.1:{self.ports['etcd']}",
            "--bind-address=127.0.0.1", f"--secure-port={self.ports['apiserver']}",
            "--advertise-address=127.0.0.1",
            # The "kubernetes" Service would get Endpoints 127.0.0.1, which the
            # Endpoints validation refuses (loopback): do not reconcile them.
            "--endpoint-reconciler-type=none",
            f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--service-account-issuer={SA_ISSUER}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--requestheader-client-ca-file={pki / 'front-proxy-ca.crt'}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={pki / 'front-proxy-client.crt'}",
            f"--proxy-client-key-file={pki / 'front-proxy-client.key'}",
            "--authorization-mode=Node,RBAC",
            f"--enable-admission-plugins={ADMISSION_PLUGINS}",
            "--allow-privileged=true",
            "--profiling=false",
            f"--v={self.verbosity}",
        ]

    def _argv_controller_manager(self) -> list[str]:
        kc = self.workdir / "controller-manager.kubeconfig"
        pki = self.pki
        return [
            str(self.bin_dir / "kube"), "controller-manager",
            f"--kubeconfig={kc}", f"--authentication-kubeconfig={kc}", f"--authorization-kubeconfig={kc}",
            "--bind-address=127.0.0.1", f"--secure-port={self.ports['controller-manager']}",
            "--leader-elect=false",
            "--use-service-account-credentials=true",
            f"--root-ca-file={pki / 'ca.crt'}",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}",
            f"--cluster-signing-key-file={pki / 'ca.key'}",
            "--cluster-name=testbed",
            "--controllers=*,-cloud-node-lifecycle-controller,-node-route-controller,-service-lb-controller",
            "--profiling=false",
            f"--v={self.verbosity}",
        ]

    def _argv_scheduler(self) -> list[str]:
        kc = self.workdir / "scheduler.kubeconfig"
        return [
            str(self.bin_dir / "kube"), "scheduler",
            f"--kubeconfig={kc}", f"--authentication-kubeconfig={kc}", f"--authorization-kubeconfig={kc}",
            "--bind-address=127.0.0.1", f"--secure-port={self.ports['scheduler']}",
            "--leader-elect=false",
            "--profiling=false",
            f"--v={self.verbosity}",
        ]

    def _argv_kwok(self) -> list[str]:
        k, v = KWOK_ANNOTATION
        return [
            str(self.bin_dir / "kwok"),
            f"--kubeconfig={self.workdir / 'kwok.kubeconfig'}",
            f"--config={HERE / 'kwok.yaml'}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={k}={v}",
            "--manage-nodes-with-label-selector=",
        ]

    def _spawn(self, name: str, argv: list[str]) -> None:
        env = dict(os.environ)
        env["HOME"] = str(self.workdir)  # kwok reads ~/.kwok; keep it inside workdir
        self.procs.append(_Proc(name, argv, self.logs / f"{name}.log", env=env))
        (self.workdir / "pids").write_text("".join(f"{p.pid} {p.name}\n" for p in self.procs))

    def _wait(self, what: str, check, deadline: float) -> None:
        while True:
            for p in self.procs:
                if not p.alive():
                    raise TestbedError(f"{p.name} exited ({p.popen.returncode}) while waiting for "
                                       f"{what}; log {p.log}:\n{p.tail()}")
            try:
                if check():
                    return
            except (OSError, ValueError, http.client.HTTPException):
                pass
            if time.monotonic() > deadline:
                raise TestbedError(f"timed out waiting for {what}; logs in {self.logs}")
            time.sleep(0.2)

    def _client_ssl(self) -> ssl.SSLContext:
        if self._ssl is None:
            ctx = ssl.create_default_context(cafile=str(self.ca_file))
            ctx.load_cert_chain(*map(str, self.admin_cert))
            self._ssl = ctx
        return self._ssl

    def _http_ok(self, url: str, expect: bytes, insecure: bool = False) -> bool:
        ctx = None
        if url.startswith("https"):
            # controller-manager/scheduler serve a self-signed cert made in memory
            ctx = ssl._create_unverified_context() if insecure else self._client_ssl()
        try:
            with urllib.request.urlopen(url, context=ctx, timeout=3) as r:
                return r.status == 200 and expect in r.read()
        except urllib.error.URLError:
            return False

    def _api_ok(self, path: str) -> bool:
        try:
            return self.api("GET", path)[0] == 200
        except urllib.error.URLError:
            return False

    def _create_nodes(self) -> None:
        k, v = KWOK_ANNOTATION
        res = {"cpu": "32", "memory": "64Gi", "pods": "110"}
        for name in self.nodes:
            node = {
                "apiVersion": "v1", "kind": "Node",
                "metadata": {
                    "name": name,
                    "annotations": {k: v, "node.alpha.kubernetes.io/ttl": "0"},
                    "labels": {
                        "type": "kwok",
                        "kubernetes.io/hostname": name,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                        "kubernetes.io/role": "agent",
                        "node-role.kubernetes.io/agent": "",
                    },
                },
                "spec": {},
                "status": {"allocatable": res, "capacity": res,
                           "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux"}},
            }
            status, out = self.api("POST", "/api/v1/nodes", node)
            if status not in (201, 409):
                raise TestbedError(f"create node {name}: HTTP {status}: {out}")

    def _nodes_ready(self) -> bool:
        status, out = self.api("GET", "/api/v1/nodes?labelSelector=type%3Dkwok")
        if status != 200:
            return False
        ready = {
            n["metadata"]["name"]
            for n in out.get("items", [])
            if any(c.get("type") == "Ready" and c.get("status") == "True"
                   for c in n.get("status", {}).get("conditions", []))
        }
        return set(self.nodes) <= ready


# ---------------------------------------------------------------------- CLI
def _cmd_up(workdir: Path) -> int:
    tb = Testbed(workdir)
    stop = {"flag": False}

    def on_signal(signum, frame):
        stop["flag"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    tb.start()
    print(f"started in {tb.start_seconds:.1f}s", file=sys.stderr)
    print(f"server:     {tb.server}", file=sys.stderr)
    print(f"logs:       {tb.logs}", file=sys.stderr)
    print(f"export KUBECONFIG={tb.kubeconfig}", file=sys.stderr)
    print(tb.kubeconfig, flush=True)
    try:
        while not stop["flag"]:
            dead = [p for p in tb.procs if not p.alive()]
            if dead:
                print(f"{dead[0].name} exited ({dead[0].popen.returncode}); see {dead[0].log}",
                      file=sys.stderr)
                return 1
            time.sleep(0.5)
    finally:
        tb.stop()
        print("stopped", file=sys.stderr)
    return 0


def _cmd_down(workdir: Path) -> int:
    pids = Path(workdir) / "pids"
    if not pids.exists():
        print(f"no {pids}", file=sys.stderr)
        return 0
    for line in reversed(pids.read_text().splitlines()):
        pid, name = line.split(maxsplit=1)
        try:
            os.killpg(int(pid), signal.SIGTERM)
            print(f"SIGTERM {name} (pgid {pid})", file=sys.stderr)
        except ProcessLookupError:
            pass
    pids.unlink()
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("up", "down"):
        print(f"usage: {Path(sys.argv[0]).name} up|down WORKDIR", file=sys.stderr)
        return 2
    workdir = Path(argv[1])
    return _cmd_up(workdir) if argv[0] == "up" else _cmd_down(workdir)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
