"""Encryption at rest for tenant and server secrets (Fernet, key derived from settings)."""
import base64
import hashlib
import json

from cryptography.fernet import Fernet


class SecretBox:
    def __init__(self, secret_key: str):
        digest = hashlib.sha256(b"odoosaas-secrets:" + secret_key.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    def seal(self, values: dict) -> str:
        return self._fernet.encrypt(json.dumps(values).encode()).decode()

    def open(self, token: str) -> dict:
        return json.loads(self._fernet.decrypt(token.encode())) if token else {}
