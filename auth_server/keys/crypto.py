"""Key material: RSA generation, RFC 7638 thumbprints, public JWKs, AES-GCM at rest."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12


class KeyDecryptionError(Exception):
    """The stored private key could not be decrypted (wrong AUTH_KEY_ENCRYPTION_KEY, or tampering)."""


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def generate_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def thumbprint_kid(public_key: rsa.RSAPublicKey) -> str:
    """RFC 7638 §3: SHA-256 over the required members in lexicographic order, no whitespace."""
    numbers = public_key.public_numbers()
    canonical = json.dumps(
        {"e": _b64url_uint(numbers.e), "kty": "RSA", "n": _b64url_uint(numbers.n)},
        separators=(",", ":"),
        sort_keys=True,
    )
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def public_jwk(public_key: rsa.RSAPublicKey, kid: str) -> dict[str, Any]:
    """The public JWK, built from the public numbers only: no private member can ever appear."""
    numbers = public_key.public_numbers()
    return {
        "kty": "RSA",
        "use": "sig",
        "alg": "RS256",
        "kid": kid,
        "n": _b64url_uint(numbers.n),
        "e": _b64url_uint(numbers.e),
    }


def encrypt_private_key(private_key: rsa.RSAPrivateKey, kek: bytes, kid: str) -> bytes:
    """PKCS#8 DER under AES-256-GCM; the kid is associated data, so rows can't be swapped."""
    der = private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(kek).encrypt(nonce, der, kid.encode())


def decrypt_private_key(blob: bytes, kek: bytes, kid: str) -> rsa.RSAPrivateKey:
    try:
        der = AESGCM(kek).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], kid.encode())
    except (InvalidTag, ValueError) as exc:
        raise KeyDecryptionError(f"cannot decrypt signing key {kid}") from exc
    key = serialization.load_der_private_key(der, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyDecryptionError(f"signing key {kid} is not an RSA key")
    return key
