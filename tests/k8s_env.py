"""The Kubernetes side of the tests: the testbed (or a real cluster through
ODOOSAAS_TEST_KUBECONFIG), a volume binder for the testbed, Traefik on its CRD provider, and
kustomize to render deploy/'s overlays."""
import fcntl
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from lightkube import Client, KubeConfig, codecs
from lightkube.models.core_v1 import HostPathVolumeSource, ObjectReference, PersistentVolumeSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import PersistentVolume, PersistentVolumeClaim

from odoosaas.drivers.local import find_traefik
from odoosaas.pg.clusters import free_port
from odoosaas.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "testbed" / "k8s"))
CACHE = Path(os.environ.get("ODOOSAAS_CACHE", Path.home() / ".cache" / "odoosaas"))
KUSTOMIZE = "sigs.k8s.io/kustomize/kustomize/v5@v5.8.2"  # v5.8.3 needs Go 1.27


def start_cluster(workdir: Path):
    """(kubeconfig path, stop function): a real cluster if named, else the testbed."""
    if os.environ.get("ODOOSAAS_TEST_KUBECONFIG"):
        return Path(os.environ["ODOOSAAS_TEST_KUBECONFIG"]), lambda: None
    from testbed import Testbed
    bed = Testbed(workdir / "testbed").start()
    binder = VolumeBinder(Client(KubeConfig.from_file(bed.kubeconfig)), workdir / "volumes")
    binder.start()
    return bed.kubeconfig, lambda: (binder.stop(), bed.stop())


class VolumeBinder(threading.Thread):
    """The testbed has no storage provisioner: give each pending claim a hostPath volume."""

    def __init__(self, client: Client, folder: Path):
        super().__init__(daemon=True)
        self.client, self.folder, self.stopping = client, folder, threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(0.2):
            try:
                for claim in self.client.list(PersistentVolumeClaim, namespace="*"):
                    if claim.status.phase == "Pending" and not claim.spec.volumeName:
                        self.bind(claim)
            except Exception:  # the API server may be going away at teardown
                continue

    def bind(self, claim) -> None:
        name = f"pv-{claim.metadata.uid}"
        size = claim.spec.resources.requests["storage"]
        ref = ObjectReference(kind="PersistentVolumeClaim", namespace=claim.metadata.namespace,
                              name=claim.metadata.name, uid=claim.metadata.uid)
        volume = PersistentVolume(metadata=ObjectMeta(name=name), spec=PersistentVolumeSpec(
            capacity={"storage": size}, accessModes=claim.spec.accessModes, claimRef=ref,
            persistentVolumeReclaimPolicy="Delete", storageClassName=claim.spec.storageClassName or "",
            hostPath=HostPathVolumeSource(path=str(self.folder / name))))
        try:
            self.client.create(volume)
        except Exception:
            pass

    def stop(self) -> None:
        self.stopping.set()


def traefik_crds(client: Client) -> None:
    """Traefik's own CRD definitions, as `make traefik` fetched them."""
    path = CACHE / "traefik-crds.yml"  # testbed/traefik/build.sh fetched them
    for obj in codecs.load_all_yaml(path.read_text()):
        client.apply(obj, field_manager="odoosaas-tests", force=True)


def start_traefik(kubeconfig: Path, workdir: Path):
    """Traefik watching IngressRoutes through the API server; returns (api URL, process)."""
    web, api = free_port(), free_port()
    argv = [find_traefik(Settings(traefik_port=1)), "--providers.kubernetescrd=true",
            "--providers.kubernetescrd.allowEmptyServices=true", f"--entryPoints.websecure.address=127.0.0.1:{web}",
            f"--entryPoints.traefik.address=127.0.0.1:{api}", "--api=true", "--api.insecure=true",
            "--api.dashboard=false", "--providers.providersThrottleDuration=100ms",
            "--global.checkNewVersion=false", "--global.sendAnonymousUsage=false", "--log.level=INFO",
            # the resolver custom domains' IngressRoutes name (ODOOSAAS_K8S_CERT_RESOLVER); no CA answers here
            "--certificatesResolvers.letsencrypt.acme.caServer=https://127.0.0.1:9/dir",
            f"--certificatesResolvers.letsencrypt.acme.storage={workdir / 'acme.json'}",
            "--certificatesResolvers.letsencrypt.acme.httpChallenge.entryPoint=websecure"]
    log = open(workdir / "traefik-crd.log", "ab")
    process = subprocess.Popen(argv, env={**os.environ, "KUBECONFIG": str(kubeconfig)}, stdout=log,
                               stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{api}"
    for _ in range(100):
        try:
            httpx.get(url + "/api/http/routers").raise_for_status()
            return url, process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("Traefik did not start: " + (workdir / "traefik-crd.log").read_text()[-2000:])


def routers(traefik_url: str) -> dict[str, str]:
    return {r["name"]: r["rule"] for r in httpx.get(traefik_url + "/api/http/routers").json()}


def kustomize() -> Path:
    """The kustomize binary, `go install`ed once from its module into the cache (under a minute from empty Go
    caches on 2 cores, a few seconds with the testbed's); `kubectl apply -k` embeds kustomize v5 too."""
    binary, stamp = CACHE / "bin" / "kustomize", CACHE / "bin" / "kustomize.version"
    binary.parent.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "bin" / ".kustomize.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test runs build it once
        if not (binary.exists() and stamp.exists() and stamp.read_text() == KUSTOMIZE):
            subprocess.run(["go", "install", "-trimpath", "-ldflags=-s -w", KUSTOMIZE], check=True, timeout=900,
                           env={**os.environ, "GOBIN": str(binary.parent), "GOTOOLCHAIN": "local"})
            stamp.write_text(KUSTOMIZE)
    return binary


def kustomize_build(folder: Path) -> str:
    return subprocess.run([str(kustomize()), "build", str(folder)], check=True, capture_output=True, text=True).stdout
