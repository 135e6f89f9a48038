"""amr and acr of every sign-in, exactly as contract §8.3 lists them, from one function."""

from __future__ import annotations

import datetime as dt

import pytest

from auth_server.sessions.authentication import (
    ACR_MFA,
    ACR_PASSWORD,
    HWK,
    OTP,
    PWD,
    NotASignIn,
    authentication_for,
)

NOW = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("methods", "user_verified", "amr", "acr"),
    [
        ((PWD,), False, ["pwd"], ACR_PASSWORD),
        ((PWD, OTP), False, ["pwd", "otp", "mfa"], ACR_MFA),  # TOTP or a recovery code
        ((HWK,), True, ["hwk", "user", "mfa"], ACR_MFA),  # a passkey with user verification
        ((PWD, HWK), False, ["pwd", "hwk", "mfa"], ACR_MFA),  # a passkey as second factor
        ((PWD, HWK), True, ["pwd", "hwk", "user", "mfa"], ACR_MFA),
    ],
)
def test_amr_and_acr_per_contract(
    methods: tuple[str, ...], user_verified: bool, amr: list[str], acr: str
) -> None:
    auth = authentication_for(NOW, methods, user_verified=user_verified)
    assert auth.claims() == {"auth_time": int(NOW.timestamp()), "amr": amr, "acr": acr}


@pytest.mark.parametrize(
    ("methods", "user_verified"),
    [((), False), ((OTP,), False), ((HWK,), False), (("sms",), False), ((PWD, "sms"), False)],
)
def test_what_is_no_sign_in_is_refused(methods: tuple[str, ...], user_verified: bool) -> None:
    with pytest.raises(NotASignIn):
        authentication_for(NOW, methods, user_verified=user_verified)
