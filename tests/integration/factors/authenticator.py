"""A software WebAuthn authenticator for the factor tests: it makes an EC P-256 credential and
signs assertions exactly as WebAuthn L3 §6.1 and §6.5 lay the bytes out (authenticator data,
COSE key, `none` attestation, signature over authData || SHA-256(clientDataJSON)).

It is written here, from the spec, so that the service tests can choose every byte (origin,
RP ID, flags, counter); py_webauthn's published vectors (tests/unit/auth/test_webauthn_relying_party.py)
check the same verification against bytes from real authenticators, and the browser tests of the
pages part use Chromium's own virtual authenticator.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import struct
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class SoftAuthenticator:
    rp_id: str = "localhost"
    origin: str = "http://localhost:8000"
    user_verifying: bool = True
    backup_eligible: bool = False
    backed_up: bool = False
    counter: int | None = 0  # None: keeps no counter (always 0)
    credential_id: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    user_handle: bytes | None = None

    def _flags(self, *, attested: bool, uv: bool | None) -> int:
        flags = UP
        if self.user_verifying if uv is None else uv:
            flags |= UV
        if self.backup_eligible:
            flags |= BE
        if self.backed_up:
            flags |= BS
        if attested:
            flags |= AT
        return flags

    def _count(self) -> int:
        if self.counter is None:
            return 0
        self.counter += 1
        return self.counter

    def _cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps(
            {
                1: 2,
                3: -7,
                -1: 1,
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )

    def _client_data(self, type_: str, challenge: str, origin: str | None, cross: bool) -> bytes:
        return json.dumps(
            {
                "type": type_,
                "challenge": challenge,
                "origin": origin or self.origin,
                "crossOrigin": cross,
            }
        ).encode()

    def register(
        self,
        options: dict[str, Any],
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        challenge: str | None = None,
        uv: bool | None = None,
    ) -> dict[str, Any]:
        """RegistrationResponseJSON for PublicKeyCredentialCreationOptionsJSON `options`."""
        self.user_handle = unb64url(options["user"]["id"])
        client_data = self._client_data(
            "webauthn.create", challenge or options["challenge"], origin, False
        )
        rp_hash = hashlib.sha256((rp_id or self.rp_id).encode()).digest()
        attested = (
            bytes(16)
            + struct.pack(">H", len(self.credential_id))
            + self.credential_id
            + self._cose_key()
        )
        count = 0 if self.counter is None else self.counter
        auth_data = (
            rp_hash
            + bytes([self._flags(attested=True, uv=uv)])
            + struct.pack(">I", count)
            + attested
        )
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation),
                "transports": ["internal", "hybrid"],
            },
            "clientExtensionResults": {},
        }

    def assert_(
        self,
        options: dict[str, Any],
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        uv: bool | None = None,
        user_handle: bytes | bool | None = True,
        cross_origin: bool = False,
        count: int | None = None,
    ) -> dict[str, Any]:
        """AuthenticationResponseJSON for PublicKeyCredentialRequestOptionsJSON `options`.
        `user_handle`: True sends the stored one (as a discoverable credential does), None none,
        bytes that value; `count`: this signature counter instead of the next one."""
        client_data = self._client_data("webauthn.get", options["challenge"], origin, cross_origin)
        rp_hash = hashlib.sha256((rp_id or self.rp_id).encode()).digest()
        signed_count = self._count() if count is None else count
        auth_data = (
            rp_hash + bytes([self._flags(attested=False, uv=uv)]) + struct.pack(">I", signed_count)
        )
        signature = self.key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        response: dict[str, Any] = {
            "clientDataJSON": b64url(client_data),
            "authenticatorData": b64url(auth_data),
            "signature": b64url(signature),
        }
        handle = self.user_handle if user_handle is True else user_handle
        if handle:
            response["userHandle"] = b64url(handle)
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "response": response,
            "clientExtensionResults": {},
        }
