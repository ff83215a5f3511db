"""Where backups go: a folder under the data dir, or an S3 bucket. Every object is encrypted before it is written
(AES-256-GCM, one frame per MiB: a random nonce, the sealed chunk and its tag), so no part leaves the machine readable
and a dump of any size streams through in constant memory."""
import hashlib
import os
import shutil
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

CHUNK = 1 << 20
FRAME = CHUNK + 12 + 16


def key(settings) -> bytes:
    """The backup key, or one derived from the platform's secret (a separate key survives a new secret)."""
    return hashlib.sha256(b"odoosaas-backups:" + (settings.backup_key or settings.secret_key).encode()).digest()


def seal(source, target, secret: bytes) -> tuple[int, str]:
    """Encrypt a stream into a file; returns the size and sha256 of what was written."""
    aead, digest, size = AESGCM(secret), hashlib.sha256(), 0
    while block := source.read(CHUNK):
        nonce = os.urandom(12)
        frame = nonce + aead.encrypt(nonce, block, None)
        target.write(frame)
        digest.update(frame)
        size += len(frame)
    return size, digest.hexdigest()


def unseal(source, secret: bytes):
    """The plaintext chunks of a sealed stream; a changed byte fails its frame (cryptography's InvalidTag)."""
    aead = AESGCM(secret)
    while frame := source.read(FRAME):
        yield aead.decrypt(frame[:12], frame[12:], None)


def sha256(path: Path) -> str:
    with open(path, "rb") as data:
        return hashlib.file_digest(data, "sha256").hexdigest()


class Folder:
    """The embedded default: objects are files under `<data dir>/backups/`."""

    def __init__(self, root: Path):
        self.root = root

    def put(self, name: str, path: Path) -> None:
        (self.root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, self.root / name)

    def open(self, name: str):
        return open(self.root / name, "rb")

    def delete(self, name: str) -> None:
        (self.root / name).unlink(missing_ok=True)


class Bucket:
    """Any S3-compatible store; its credentials go to boto3 only (never argv, logs or answers)."""

    def __init__(self, settings):
        import boto3
        from botocore.config import Config
        self.bucket, self.prefix = settings.backup_s3_bucket, settings.backup_s3_prefix
        self.client = boto3.client("s3", endpoint_url=settings.backup_s3_endpoint or None,
                                   region_name=settings.backup_s3_region, config=Config(s3={"addressing_style": "path"}),
                                   aws_access_key_id=settings.backup_s3_access_key or None,
                                   aws_secret_access_key=settings.backup_s3_secret_key or None)

    def put(self, name: str, path: Path) -> None:
        self.client.upload_file(str(path), self.bucket, self.prefix + name)

    def open(self, name: str):
        return self.client.get_object(Bucket=self.bucket, Key=self.prefix + name)["Body"]

    def delete(self, name: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.prefix + name)


def make_store(settings):
    return Bucket(settings) if settings.backup_s3_bucket else Folder(settings.data_dir / "backups")
