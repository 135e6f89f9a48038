"""AUTH_WEBAUTHN_RP_ID and the expected origins (contract §8.5): a domain name, never an IP
address; the default follows the issuer; every origin lies on the RP ID. And the secrets kept
under the key-encryption key: each bound to its row."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from auth_server.keys.crypto import (
    SecretDecryptionError,
    decrypt_secret,
    derive_key,
    encrypt_secret,
)
from auth_server.settings import AuthSettings


def settings(**values: object) -> AuthSettings:
    return AuthSettings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]


@pytest.mark.parametrize(
    ("issuer", "rp_id", "origins"),
    [
        ("http://127.0.0.1:8000", "localhost", ["http://localhost:8000"]),
        ("http://[::1]:8000", "localhost", ["http://localhost:8000"]),
        ("http://localhost:8000", "localhost", ["http://localhost:8000"]),
        ("https://auth.example.com", "auth.example.com", ["https://auth.example.com"]),
        ("https://Auth.Example.com:8443/", "auth.example.com", ["https://auth.example.com:8443"]),
    ],
)
def test_the_defaults_follow_the_issuer(issuer: str, rp_id: str, origins: list[str]) -> None:
    configured = settings(issuer=issuer)
    assert configured.rp_id == rp_id
    assert configured.webauthn_expected_origins == origins


def test_a_configured_rp_id_may_be_a_parent_domain_of_the_origins() -> None:
    configured = settings(
        issuer="https://auth.example.com",
        webauthn_rp_id="Example.COM.",
        webauthn_origins="https://auth.example.com,https://example.com/",
    )
    assert configured.rp_id == "example.com"
    assert configured.webauthn_expected_origins == [
        "https://auth.example.com",
        "https://example.com",
    ]


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"webauthn_rp_id": "127.0.0.1"}, "not an IP address"),
        ({"webauthn_rp_id": "::1"}, "not an IP address"),
        ({"webauthn_rp_id": "https://example.com"}, "not a domain name"),
        ({"webauthn_rp_id": "example.com:443"}, "not a domain name"),
        ({"webauthn_origins": "https://evil.example"}, "not on the RP ID"),
        ({"webauthn_origins": "https://notlocalhost"}, "not on the RP ID"),
        ({"webauthn_origins": "http://localhost:8000/login"}, "not an origin"),
        (
            {"webauthn_rp_id": "example.com", "webauthn_origins": "http://auth.example.com"},
            "https",
        ),
    ],
)
def test_what_cannot_be_an_rp_id_or_origin_is_refused(
    values: dict[str, object], complaint: str
) -> None:
    with pytest.raises(ValidationError, match=complaint):
        settings(**values)


def test_secrets_are_bound_to_their_row_and_key() -> None:
    kek = b"k" * 32
    key = derive_key(kek, "notes-auth totp seeds v1")
    assert key != kek and key != derive_key(kek, "another purpose")
    blob = encrypt_secret(b"JBSWY3DPEHPK3PXP", key, b"row-1")
    assert b"JBSWY3DPEHPK3PXP" not in blob
    assert decrypt_secret(blob, key, b"row-1") == b"JBSWY3DPEHPK3PXP"
    with pytest.raises(SecretDecryptionError):
        decrypt_secret(blob, key, b"row-2")
    with pytest.raises(SecretDecryptionError):
        decrypt_secret(blob, derive_key(kek, "another purpose"), b"row-1")
