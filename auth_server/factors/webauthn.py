"""The WebAuthn relying party (Level 3) with py_webauthn: the options of both ceremonies, the
verification of their responses, and the signature counter's rule. Challenges and credentials
are stored by the repository; this module does no I/O.

What py_webauthn checks (L3 §7.1, §7.2): the client data's type, challenge and origin, the RP ID
hash, user presence (and user verification when asked), the attestation statement (`none` is
asked for: we don't trust vendors, we bind keys to accounts) and the assertion's signature. What
this module adds:
- a cross-origin ceremony (in a frame) is refused: our pages are never framed;
- the user handle an authenticator returns must be the credential's (§7.2 step 6);
- the backup-eligible flag must be what it was at registration (§6.1.3, §7.2 step 19);
- the counter follows §6.1.1 in `counter_outcome`, not py_webauthn's stricter rule.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import webauthn
from webauthn.helpers import (
    bytes_to_base64url,
    options_to_json_dict,
    parse_authentication_credential_json,
    parse_client_data_json,
    parse_registration_credential_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticationCredential,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    RegistrationCredential,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from auth_server.factors.errors import PasskeyRejected

REQUIRED = UserVerificationRequirement.REQUIRED.value
PREFERRED = UserVerificationRequirement.PREFERRED.value
TIMEOUT_MS = 120_000  # a hint to the browser; the challenge's own expiry is what counts
MAX_RESPONSE_CHARS = 64 * 1024  # a registration with a long attestation fits in a few KiB
_TRANSPORTS = frozenset(transport.value for transport in AuthenticatorTransport)
# What parsing and verifying a hostile response can raise besides py_webauthn's own errors
# (bad base64 is a ValueError, a wrong shape a TypeError or KeyError).
_MALFORMED = (WebAuthnException, ValueError, TypeError, KeyError, AttributeError)


@dataclass(frozen=True, slots=True)
class NewPasskey:
    """A verified registration: what the credential record keeps."""

    credential_id: str  # base64url
    public_key: bytes  # COSE_Key
    sign_count: int
    backup_eligible: bool
    backed_up: bool
    user_verified: bool
    transports: tuple[str, ...]
    aaguid: str


@dataclass(frozen=True, slots=True)
class PresentedAssertion:
    """An assertion's claims before verification: which credential to load."""

    credential_id: str  # base64url
    user_handle: bytes | None


@dataclass(frozen=True, slots=True)
class VerifiedAssertion:
    sign_count: int
    backup_eligible: bool
    backed_up: bool
    user_verified: bool


class CounterOutcome(enum.Enum):
    NO_COUNTER = "no_counter"  # both zero: the authenticator keeps no counter
    ADVANCED = "advanced"  # higher than stored: store it
    NOT_INCREASED = "not_increased"  # a possible clone: accept, keep the stored value, flag


def counter_outcome(stored: int, presented: int) -> CounterOutcome:
    """WebAuthn L3 §6.1.1 and §7.2 step 21: "If authData.signCount is nonzero or
    credentialRecord.signCount is nonzero": a presented value greater than the stored one is
    stored; otherwise "this is a signal that the authenticator may be cloned", and the RP
    decides. We accept the assertion (a synced passkey or a buggy authenticator is far more
    likely than a clone, and refusing would lock the person out), never lower the stored value,
    flag the credential, audit it and tell the person."""
    if stored == 0 and presented == 0:
        return CounterOutcome.NO_COUNTER
    if presented > stored:
        return CounterOutcome.ADVANCED
    return CounterOutcome.NOT_INCREASED


def _as_mapping(response: str | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(response, str):
        if len(response) > MAX_RESPONSE_CHARS:
            raise PasskeyRejected("the response is too large")
        try:
            parsed = json.loads(response)
        except ValueError:
            raise PasskeyRejected("the response is not JSON") from None
    else:
        parsed = dict(response)
    if not isinstance(parsed, dict):
        raise PasskeyRejected("the response is not a JSON object")
    return parsed


class RelyingParty:
    def __init__(self, *, rp_id: str, rp_name: str, origins: Sequence[str]) -> None:
        self.rp_id = rp_id
        self.rp_name = rp_name
        self.origins = list(origins)

    # -- registration ----------------------------------------------------------------------

    def registration_options(
        self,
        *,
        challenge: bytes,
        user_handle: bytes,
        user_name: str,
        exclude: Sequence[str] = (),
    ) -> dict[str, Any]:
        """PublicKeyCredentialCreationOptionsJSON (L3 §5.4), for
        `PublicKeyCredential.parseCreationOptionsFromJSON`. A discoverable credential is
        required (the same passkey signs in without a password); user verification is
        preferred here and required at a passwordless sign-in."""
        options = webauthn.generate_registration_options(
            rp_id=self.rp_id,
            rp_name=self.rp_name,
            user_id=user_handle,
            user_name=user_name,
            user_display_name=user_name,
            challenge=challenge,
            timeout=TIMEOUT_MS,
            attestation=AttestationConveyancePreference.NONE,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.REQUIRED,
                user_verification=UserVerificationRequirement.PREFERRED,
            ),
            # L3 §5.4.3: the authenticators that already hold one of the account's passkeys
            # are told so, and don't make a second.
            exclude_credentials=[_descriptor(credential_id) for credential_id in exclude],
        )
        return options_to_json_dict(options)

    def verify_registration(
        self, response: str | Mapping[str, Any], *, challenge: bytes
    ) -> NewPasskey:
        """A registration response (RegistrationResponseJSON), verified against the challenge,
        our RP ID and origins; PasskeyRejected with the reason otherwise."""
        data = _as_mapping(response)
        try:
            credential = parse_registration_credential_json(data)
            self._same_origin(credential)
            verified = webauthn.verify_registration_response(
                credential=credential,
                expected_challenge=challenge,
                expected_rp_id=self.rp_id,
                expected_origin=self.origins,
            )
        except PasskeyRejected:
            raise
        except _MALFORMED as exc:
            raise PasskeyRejected(_reason(exc)) from None
        transports = tuple(
            sorted({t.value for t in credential.response.transports or ()} & _TRANSPORTS)
        )
        return NewPasskey(
            credential_id=bytes_to_base64url(verified.credential_id),
            public_key=verified.credential_public_key,
            sign_count=verified.sign_count,
            backup_eligible=verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE,
            backed_up=verified.credential_backed_up,
            user_verified=verified.user_verified,
            transports=transports,
            aaguid=verified.aaguid,
        )

    # -- authentication --------------------------------------------------------------------

    def authentication_options(
        self,
        *,
        challenge: bytes,
        allow: Sequence[tuple[str, Sequence[str]]] = (),
        user_verification: str = PREFERRED,
    ) -> dict[str, Any]:
        """PublicKeyCredentialRequestOptionsJSON (L3 §5.5). `allow`: the account's credentials
        (id, transports) when the account is known (a second factor); empty for a passwordless
        sign-in, where the authenticator offers its discoverable credentials."""
        options = webauthn.generate_authentication_options(
            rp_id=self.rp_id,
            challenge=challenge,
            timeout=TIMEOUT_MS,
            allow_credentials=[_descriptor(cid, transports) for cid, transports in allow],
            user_verification=UserVerificationRequirement(user_verification),
        )
        return options_to_json_dict(options)

    def presented(self, response: str | Mapping[str, Any]) -> PresentedAssertion:
        """Which credential an assertion claims to be from (nothing is verified yet)."""
        data = _as_mapping(response)
        try:
            credential = parse_authentication_credential_json(data)
        except _MALFORMED as exc:
            raise PasskeyRejected(_reason(exc)) from None
        return PresentedAssertion(
            credential_id=bytes_to_base64url(credential.raw_id),
            user_handle=credential.response.user_handle or None,
        )

    def verify_assertion(
        self,
        response: str | Mapping[str, Any],
        *,
        challenge: bytes,
        public_key: bytes,
        require_user_verification: bool,
    ) -> VerifiedAssertion:
        """An assertion (AuthenticationResponseJSON) verified against the challenge, our RP ID
        and origins, and the credential's public key. The counter is left to `counter_outcome`:
        py_webauthn refuses any counter that doesn't increase, which L3 §6.1.1 leaves to the RP,
        so it is given 0 as the stored count (its check then only refuses nothing)."""
        data = _as_mapping(response)
        try:
            credential = parse_authentication_credential_json(data)
            self._same_origin(credential)
            verified = webauthn.verify_authentication_response(
                credential=credential,
                expected_challenge=challenge,
                expected_rp_id=self.rp_id,
                expected_origin=self.origins,
                credential_public_key=public_key,
                credential_current_sign_count=0,
                require_user_verification=require_user_verification,
            )
        except PasskeyRejected:
            raise
        except _MALFORMED as exc:
            raise PasskeyRejected(_reason(exc)) from None
        return VerifiedAssertion(
            sign_count=verified.new_sign_count,
            backup_eligible=verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE,
            backed_up=verified.credential_backed_up,
            user_verified=verified.user_verified,
        )

    @staticmethod
    def _same_origin(credential: RegistrationCredential | AuthenticationCredential) -> None:
        """L3 §7.1 step 10 / §7.2 step 13: a ceremony run inside a cross-origin frame says so
        (`crossOrigin: true`); our pages are never framed, so it is refused."""
        client_data = parse_client_data_json(credential.response.client_data_json)
        if client_data.cross_origin:
            raise PasskeyRejected("the ceremony ran in a cross-origin frame")


def _descriptor(
    credential_id: str, transports: Sequence[str] = ()
) -> PublicKeyCredentialDescriptor:
    known = [AuthenticatorTransport(t) for t in transports if t in _TRANSPORTS]
    return PublicKeyCredentialDescriptor(
        id=webauthn.base64url_to_bytes(credential_id), transports=known or None
    )


def _reason(exc: BaseException) -> str:
    """py_webauthn's message (it names the check that failed, never a secret); others get a
    generic one."""
    if isinstance(exc, WebAuthnException) and str(exc):
        return str(exc)
    return "the response is malformed"


__all__ = [
    "PREFERRED",
    "REQUIRED",
    "CounterOutcome",
    "NewPasskey",
    "PresentedAssertion",
    "RelyingParty",
    "VerifiedAssertion",
    "counter_outcome",
]
