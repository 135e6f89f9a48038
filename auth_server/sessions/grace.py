"""The stored answer of a rotation, kept for the reuse grace window, AES-GCM encrypted.

The key is derived from AUTH_KEY_ENCRYPTION_KEY with HKDF under its own label, so it is never the
key that protects the signing keys. The refresh token's hash is the associated data: a payload
can't be moved to another row.
"""

from __future__ import annotations

import json
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class GraceCipher:
    def __init__(self, key_encryption_secret: bytes) -> None:
        key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"notes-auth refresh grace v1"
        ).derive(key_encryption_secret)
        self._aead = AESGCM(key)

    def seal(self, response: dict[str, Any], token_hash: str) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, json.dumps(response).encode(), token_hash.encode())

    def open(self, blob: bytes, token_hash: str) -> dict[str, Any] | None:
        try:
            plain = self._aead.decrypt(blob[:12], blob[12:], token_hash.encode())
        except (InvalidTag, ValueError):
            return None
        value = json.loads(plain)
        return value if isinstance(value, dict) else None
