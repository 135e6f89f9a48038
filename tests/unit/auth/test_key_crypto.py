"""RFC 7638 thumbprints and the AES-GCM wrapping of private keys."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers

from auth_server.keys import crypto


def _b64(value: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)), "big")


def test_thumbprint_of_the_rfc7638_example_key() -> None:
    # RFC 7638 §3.1: the example RSA key and its SHA-256 thumbprint.
    n = (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECP"
        "ebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY"
        "368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0f"
        "M4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    )
    public = RSAPublicNumbers(_b64("AQAB"), _b64(n)).public_key()
    assert crypto.thumbprint_kid(public) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_private_key_round_trips_under_the_right_key_only() -> None:
    key = crypto.generate_rsa_key()
    kek = b"k" * 32
    blob = crypto.encrypt_private_key(key, kek, "kid-1")
    restored = crypto.decrypt_private_key(blob, kek, "kid-1")
    assert restored.private_numbers() == key.private_numbers()
    with pytest.raises(crypto.KeyDecryptionError):
        crypto.decrypt_private_key(blob, b"x" * 32, "kid-1")
    with pytest.raises(crypto.KeyDecryptionError):
        crypto.decrypt_private_key(blob, kek, "kid-2")
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(crypto.KeyDecryptionError):
        crypto.decrypt_private_key(tampered, kek, "kid-1")


def test_public_jwk_never_has_private_members() -> None:
    key = crypto.generate_rsa_key()
    jwk = crypto.public_jwk(key.public_key(), "kid")
    assert set(jwk) == {"kty", "use", "alg", "kid", "n", "e"}
    assert key.key_size == 2048
