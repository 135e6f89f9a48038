"""How a person authenticated: what browser sessions record and codes and tokens carry
(OIDC Core §2 `auth_time`, `amr`, `acr`; the values of contract §8.3). `authentication_for` is
the one place that turns the steps a sign-in passed into those values."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass

AMR_PASSWORD = ("pwd",)
# RFC 8176 §2 method names, in the order a token lists them.
PWD = "pwd"  # a password
HWK = "hwk"  # a proof of possession of a hardware-secured key: a passkey
OTP = "otp"  # a one-time code: TOTP, or a recovery code
USER = "user"  # the authenticator verified the user (WebAuthn's UV flag)
MFA = "mfa"  # more than one factor
_ORDER = (PWD, HWK, OTP, USER, MFA)
ACR_PASSWORD = "urn:notes-auth:acr:pwd"
ACR_MFA = "urn:notes-auth:acr:mfa"
ACR_VALUES = (ACR_PASSWORD, ACR_MFA)


@dataclass(frozen=True, slots=True)
class Authentication:
    auth_time: dt.datetime
    amr: tuple[str, ...]
    acr: str

    @property
    def amr_text(self) -> str:
        return " ".join(self.amr)

    @classmethod
    def stored(
        cls, auth_time: dt.datetime | None, amr: str | None, acr: str | None
    ) -> Authentication | None:
        """From a row's columns (None for a session of an earlier release, which has none)."""
        if auth_time is None or amr is None or acr is None:
            return None
        return cls(auth_time=auth_time, amr=tuple(amr.split()), acr=acr)

    def claims(self) -> dict[str, object]:
        return {
            "auth_time": int(self.auth_time.timestamp()),
            "amr": list(self.amr),
            "acr": self.acr,
        }


def password_authentication(now: dt.datetime) -> Authentication:
    """A password alone (the hosted sign-in and the password grant alike)."""
    return Authentication(auth_time=now, amr=AMR_PASSWORD, acr=ACR_PASSWORD)


class NotASignIn(ValueError):
    """The steps given don't make a sign-in (a code alone, a passkey alone without user
    verification)."""


def authentication_for(
    auth_time: dt.datetime, methods: Collection[str], *, user_verified: bool = False
) -> Authentication:
    """`auth_time`, `amr` and `acr` for a sign-in that passed `methods` (PWD, OTP, HWK), with
    exactly the values of contract §8.3:
    - a password: ["pwd"], acr pwd;
    - a password and a TOTP or recovery code: ["pwd","otp","mfa"], acr mfa;
    - a passkey with user verification: ["hwk","user","mfa"], acr mfa: the authenticator holds
      the key and verified the person (a PIN or biometrics), two factors in one;
    - a password and a passkey: ["pwd","hwk","mfa"] (with "user" when it verified the user).
    A passkey alone without user verification is one factor, which passwordless sign-in refuses;
    a code alone is no sign-in at all."""
    given = set(methods)
    if not given or not given <= {PWD, OTP, HWK}:
        raise NotASignIn(f"unknown sign-in methods: {sorted(given)}")
    if HWK in given and user_verified:
        given.add(USER)
    factors = (PWD in given) + (HWK in given) + (OTP in given)
    if PWD not in given and not (HWK in given and user_verified):
        raise NotASignIn("a sign-in needs a password, or a passkey that verified the user")
    if factors >= 2 or USER in given:
        given.add(MFA)
    amr = tuple(method for method in _ORDER if method in given)
    return Authentication(
        auth_time=auth_time, amr=amr, acr=ACR_MFA if MFA in given else ACR_PASSWORD
    )


__all__ = [
    "ACR_MFA",
    "ACR_PASSWORD",
    "ACR_VALUES",
    "AMR_PASSWORD",
    "HWK",
    "MFA",
    "OTP",
    "PWD",
    "USER",
    "Authentication",
    "NotASignIn",
    "authentication_for",
    "password_authentication",
]
