"""Where backups go: a folder under the data dir, or an S3 bucket. Every object is sealed before it is written
(AES-256-GCM, one frame per MiB: a random nonce, the encrypted chunk and its tag), so no part leaves the machine
readable, a changed byte fails its frame, and a dump of any size streams through in constant memory."""
import hashlib
import os
import shutil

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

CHUNK = 1 << 20


def key(settings) -> bytes:
    """The backup key, or one derived from the platform's secret (a key of its own survives a new secret)."""
    return hashlib.sha256(b"odoosaas-backups:" + (settings.backup_key or settings.secret_key).encode()).digest()


def seal(source, target, secret: bytes) -> tuple[int, str]:
    """Encrypt a stream into a file; the size and sha256 of what was written."""
    aead, digest = AESGCM(secret), hashlib.sha256()
    while block := source.read(CHUNK):
        nonce = os.urandom(12)
        digest.update(frame := nonce + aead.encrypt(nonce, block, None))
        target.write(frame)
    return target.tell(), digest.hexdigest()


def unseal(source, secret: bytes, digest=None):
    """The plaintext, chunk by chunk; `digest` (a hashlib object) sees what was read."""
    aead, digest = AESGCM(secret), digest or hashlib.sha256()
    while frame := source.read(CHUNK + 28):
        digest.update(frame)
        yield aead.decrypt(frame[:12], frame[12:], None)


class Folder:
    """The embedded default: objects are files under `<data dir>/backups/`."""

    def __init__(self, settings):
        self.root = settings.data_dir / "backups"

    def put(self, name: str, path) -> None:
        (self.root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, self.root / name)

    def open(self, name: str):
        return open(self.root / name, "rb")

    def delete(self, name: str) -> None:
        (self.root / name).unlink(missing_ok=True)


class Bucket:
    """Any S3-compatible store. Its endpoint and credentials are boto3's own (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`,
    `AWS_SECRET_ACCESS_KEY`, its files, an instance role): they reach no argv, log line or answer of ours."""

    def __init__(self, settings):
        import boto3  # here: 20 MB that a platform without S3 never needs
        self.bucket, _, prefix = settings.backup_s3.partition("/")
        self.prefix, self.client = prefix.rstrip("/") + "/" if prefix else "", boto3.client("s3")

    def put(self, name: str, path) -> None:
        self.client.upload_file(str(path), self.bucket, self.prefix + name)

    def open(self, name: str):
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.prefix + name)["Body"]
        except self.client.exceptions.NoSuchKey:
            raise FileNotFoundError(name) from None

    def delete(self, name: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.prefix + name)


def store(settings):
    return Bucket(settings) if settings.backup_s3 else Folder(settings)
