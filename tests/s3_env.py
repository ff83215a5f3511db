"""An S3 server for the tests: MinIO installed by testbed/minio/build.sh (AGPL-3, a test dependency only,
never shipped), serving one fresh bucket for the session on free loopback ports; and `s3_client` to look
at the objects a test's backups wrote."""
import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import boto3
import httpx
import pytest
from botocore.config import Config

from odoosaas.pg.clusters import free_port
from tests.conftest import scratch_dir

BUILD = Path(__file__).resolve().parents[1] / "testbed" / "minio" / "build.sh"
REGION = "us-east-1"  # MinIO's default region; signatures must name it


def build_minio() -> str:
    done = subprocess.run([str(BUILD)], capture_output=True, text=True)
    if done.returncode:
        pytest.fail(f"testbed/minio/build.sh failed: {done.stderr.strip()[-2000:]}")
    return done.stdout.split()[-1]


def start_minio(binary: str, folder: Path, access_key: str, secret_key: str) -> tuple[subprocess.Popen, str]:
    """`minio server` on free ports, the root credentials only in its environment (never argv)."""
    address, console = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(folder),  # its ~/.minio stays here
           "MINIO_ROOT_USER": access_key, "MINIO_ROOT_PASSWORD": secret_key, "MINIO_UPDATE": "off"}
    (folder / "data").mkdir()
    log_path = folder / "minio.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen([binary, "server", str(folder / "data"), "--address", address,
                                    "--console-address", console, "--quiet"],
                                   env=env, cwd=folder, stdout=log, stderr=subprocess.STDOUT)
    url, deadline = f"http://{address}", time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/minio/health/live", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            raise AssertionError(f"minio exited with {process.returncode}: {log_path.read_text()[-2000:]}")
        time.sleep(0.05)
    stop_minio(process)
    raise AssertionError(f"minio did not answer /minio/health/live: {log_path.read_text()[-2000:]}")


def stop_minio(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def s3_client(server):
    """A boto3 client on the test server, path-style (no bucket subdomains on 127.0.0.1). MinIO accepts
    boto3's default CRC checksums, so no checksum settings. Beware response_checksum_validation=
    "when_required": with s3transfer 0.19, download_fileobj into a non-seekable stream deadlocks for
    objects of more than 10 parts (> 80 MiB at the default 8 MiB chunks)."""
    return boto3.client(
        "s3", endpoint_url=server.endpoint_url, region_name=server.region,
        aws_access_key_id=server.access_key, aws_secret_access_key=server.secret_key,
        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4", retries={"max_attempts": 3}))


@pytest.fixture(scope="session")
def s3_server():
    """A MinIO server for the session with one empty bucket; stopped (this process only) at the end."""
    binary, folder = build_minio(), scratch_dir()
    access_key, secret_key = f"test-{secrets.token_hex(6)}", secrets.token_urlsafe(24)
    process, url = start_minio(binary, folder, access_key, secret_key)
    server = SimpleNamespace(endpoint_url=url, access_key=access_key, secret_key=secret_key, region=REGION,
                             bucket=f"odoosaas-test-{secrets.token_hex(4)}", pid=process.pid, binary=binary,
                             folder=folder)
    try:
        s3_client(server).create_bucket(Bucket=server.bucket)
        yield server
    finally:
        stop_minio(process)
        shutil.rmtree(folder, ignore_errors=True)
