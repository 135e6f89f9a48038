"""The relying party's verification paths against py_webauthn's published test vectors
(duo-labs/py_webauthn, tests/test_verify_registration_response.py and
tests/test_verify_authentication_response.py, BSD-3-Clause): responses made by real
authenticators for RP ID `localhost` at origin `http://localhost:5000`. Then the same bytes with
one thing wrong: origin, RP ID, challenge, user verification, key. And the counter rule of
WebAuthn L3 §6.1.1."""

from __future__ import annotations

import json

import pytest
from webauthn import base64url_to_bytes

from auth_server.factors.errors import PasskeyRejected
from auth_server.factors.webauthn import CounterOutcome, RelyingParty, counter_outcome

ORIGIN = "http://localhost:5000"

REGISTRATION = {
    "id": "9y1xA8Tmg1FEmT-c7_fvWZ_uoTuoih3OvR45_oAK-cwHWhAbXrl2q62iLVTjiyEZ7O7n-CROOY494k7Q3xrs_w",
    "rawId": "9y1xA8Tmg1FEmT-c7_fvWZ_uoTuoih3OvR45_oAK-cwHWhAbXrl2q62iLVTjiyEZ7O7n-CROOY494k7Q3xrs_w",
    "response": {
        "attestationObject": "o2NmbXRkbm9uZWdhdHRTdG10oGhhdXRoRGF0YVjESZYN5YgOjGh0NBcPZHZgW4_krrmihjLHmVzzuoMdl2NFAAAAFwAAAAAAAAAAAAAAAAAAAAAAQPctcQPE5oNRRJk_nO_371mf7qE7qIodzr0eOf6ACvnMB1oQG165dqutoi1U44shGezu5_gkTjmOPeJO0N8a7P-lAQIDJiABIVggSFbUJF-42Ug3pdM8rDRFu_N5oiVEysPDB6n66r_7dZAiWCDUVnB39FlGypL-qAoIO9xWHtJygo2jfDmHl-_eKFRLDA",
        "clientDataJSON": "eyJ0eXBlIjoid2ViYXV0aG4uY3JlYXRlIiwiY2hhbGxlbmdlIjoiVHdON240V1R5R0tMYzRaWS1xR3NGcUtuSE00bmdscXN5VjBJQ0psTjJUTzlYaVJ5RnRya2FEd1V2c3FsLWdrTEpYUDZmbkYxTWxyWjUzTW00UjdDdnciLCJvcmlnaW4iOiJodHRwOi8vbG9jYWxob3N0OjUwMDAiLCJjcm9zc09yaWdpbiI6ZmFsc2V9",
        "transports": ["nfc", "usb"],
    },
    "type": "public-key",
    "clientExtensionResults": {},
}
REGISTRATION_CHALLENGE = base64url_to_bytes(
    "TwN7n4WTyGKLc4ZY-qGsFqKnHM4nglqsyV0ICJlN2TO9XiRyFtrkaDwUvsql-gkLJXP6fnF1MlrZ53Mm4R7Cvw"
)
REGISTRATION_KEY = base64url_to_bytes(
    "pQECAyYgASFYIEhW1CRfuNlIN6XTPKw0RbvzeaIlRMrDwwep-uq_-3WQIlgg1FZwd_RZRsqS_qgKCDvcVh7ScoKNo3w5h5fv3ihUSww"
)

# An EC2 (P-256) assertion, counter 78 after 77, no user verification.
EC2_ASSERTION = {
    "id": "EDx9FfAbp4obx6oll2oC4-CZuDidRVV4gZhxC529ytlnqHyqCStDUwfNdm1SNHAe3X5KvueWQdAX3x9R1a2b9Q",
    "rawId": "EDx9FfAbp4obx6oll2oC4-CZuDidRVV4gZhxC529ytlnqHyqCStDUwfNdm1SNHAe3X5KvueWQdAX3x9R1a2b9Q",
    "response": {
        "authenticatorData": "SZYN5YgOjGh0NBcPZHZgW4_krrmihjLHmVzzuoMdl2MBAAAATg",
        "clientDataJSON": "eyJjaGFsbGVuZ2UiOiJ4aTMwR1BHQUZZUnhWRHBZMXNNMTBEYUx6VlFHNjZudi1fN1JVYXpIMHZJMll2RzhMWWdERW52TjVmWlpOVnV2RUR1TWk5dGUzVkxxYjQyTjBma0xHQSIsImNsaWVudEV4dGVuc2lvbnMiOnt9LCJoYXNoQWxnb3JpdGhtIjoiU0hBLTI1NiIsIm9yaWdpbiI6Imh0dHA6Ly9sb2NhbGhvc3Q6NTAwMCIsInR5cGUiOiJ3ZWJhdXRobi5nZXQifQ",
        "signature": "MEUCIGisVZOBapCWbnJJvjelIzwpixxIwkjCCb5aCHafQu68AiEA88v-2pJNNApPFwAKFiNuf82-2hBxYW5kGwVweeoxCwo",
    },
    "type": "public-key",
    "clientExtensionResults": {},
}
EC2_CHALLENGE = base64url_to_bytes(
    "xi30GPGAFYRxVDpY1sM10DaLzVQG66nv-_7RUazH0vI2YvG8LYgDEnvN5fZZNVuvEDuMi9te3VLqb42N0fkLGA"
)
EC2_KEY = base64url_to_bytes(
    "pQECAyYgASFYIIeDTe-gN8A-zQclHoRnGFWN8ehM1b7yAsa8I8KIvmplIlgg4nFGT5px8o6gpPZZhO01wdy9crDSA_Ngtkx0vGpvPHI"
)

# An RSA assertion with user verification and a user handle, counter 1.
RSA_ASSERTION = {
    "id": "ZoIKP1JQvKdrYj1bTUPJ2eTUsbLeFkv-X5xJQNr4k6s",
    "rawId": "ZoIKP1JQvKdrYj1bTUPJ2eTUsbLeFkv-X5xJQNr4k6s",
    "response": {
        "authenticatorData": "SZYN5YgOjGh0NBcPZHZgW4_krrmihjLHmVzzuoMdl2MFAAAAAQ",
        "clientDataJSON": "eyJ0eXBlIjoid2ViYXV0aG4uZ2V0IiwiY2hhbGxlbmdlIjoiaVBtQWkxUHAxWEw2b0FncTNQV1p0WlBuWmExekZVRG9HYmFRMF9LdlZHMWxGMnMzUnRfM280dVN6Y2N5MHRtY1RJcFRUVDRCVTFULUk0bWFhdm5kalEiLCJvcmlnaW4iOiJodHRwOi8vbG9jYWxob3N0OjUwMDAiLCJjcm9zc09yaWdpbiI6ZmFsc2V9",
        "signature": "iOHKX3erU5_OYP_r_9HLZ-CexCE4bQRrxM8WmuoKTDdhAnZSeTP0sjECjvjfeS8MJzN1ArmvV0H0C3yy_FdRFfcpUPZzdZ7bBcmPh1XPdxRwY747OrIzcTLTFQUPdn1U-izCZtP_78VGw9pCpdMsv4CUzZdJbEcRtQuRS03qUjqDaovoJhOqEBmxJn9Wu8tBi_Qx7A33RbYjlfyLm_EDqimzDZhyietyop6XUcpKarKqVH0M6mMrM5zTjp8xf3W7odFCadXEJg-ERZqFM0-9Uup6kJNLbr6C5J4NDYmSm3HCSA6lp2iEiMPKU8Ii7QZ61kybXLxsX4w4Dm3fOLjmDw",
        "userHandle": "T1RWa1l6VXdPRFV0WW1NNVlTMDBOVEkxTFRnd056Z3RabVZpWVdZNFpEVm1ZMk5p",
    },
    "type": "public-key",
    "clientExtensionResults": {},
}
RSA_CHALLENGE = base64url_to_bytes(
    "iPmAi1Pp1XL6oAgq3PWZtZPnZa1zFUDoGbaQ0_KvVG1lF2s3Rt_3o4uSzccy0tmcTIpTTT4BU1T-I4maavndjQ"
)
RSA_KEY = base64url_to_bytes(
    "pAEDAzkBACBZAQDfV20epzvQP-HtcdDpX-cGzdOxy73WQEvsU7Dnr9UWJophEfpngouvgnRLXaEUn_d8HGkp_HIx8rrpkx4BVs6X_B6ZjhLlezjIdJbLbVeb92BaEsmNn1HW2N9Xj2QM8cH-yx28_vCjf82ahQ9gyAr552Bn96G22n8jqFRQKdVpO-f-bvpvaP3IQ9F5LCX7CUaxptgbog1SFO6FI6ob5SlVVB00lVXsaYg8cIDZxCkkENkGiFPgwEaZ7995SCbiyCpUJbMqToLMgojPkAhWeyktu7TlK6UBWdJMHc3FPAIs0lH_2_2hKS-mGI1uZAFVAfW1X-mzKL0czUm2P1UlUox7IUMBAAE"
)


def rp(rp_id: str = "localhost", origin: str = ORIGIN) -> RelyingParty:
    return RelyingParty(rp_id=rp_id, rp_name="notes-auth", origins=[origin])


def test_a_none_attestation_registration_verifies() -> None:
    new = rp().verify_registration(REGISTRATION, challenge=REGISTRATION_CHALLENGE)
    assert new.credential_id == REGISTRATION["id"]
    assert new.public_key == REGISTRATION_KEY
    assert new.sign_count == 23
    assert (new.backup_eligible, new.backed_up) == (False, False)
    assert new.transports == ("nfc", "usb")
    # As a string, as the page sends it, too.
    assert rp().verify_registration(json.dumps(REGISTRATION), challenge=REGISTRATION_CHALLENGE)


@pytest.mark.parametrize(
    ("party", "challenge", "reason"),
    [
        (rp(origin="http://localhost:5001"), REGISTRATION_CHALLENGE, "origin"),
        (rp(origin="https://localhost:5000"), REGISTRATION_CHALLENGE, "origin"),
        (rp(rp_id="example.com"), REGISTRATION_CHALLENGE, "RP ID"),
        (rp(), b"another challenge of thirty-two!", "challenge"),
    ],
)
def test_a_registration_with_one_thing_wrong_is_refused(
    party: RelyingParty, challenge: bytes, reason: str
) -> None:
    with pytest.raises(PasskeyRejected, match=reason):
        party.verify_registration(REGISTRATION, challenge=challenge)


def test_an_ec2_assertion_verifies_and_reports_its_counter() -> None:
    presented = rp().presented(EC2_ASSERTION)
    assert presented.credential_id == EC2_ASSERTION["id"] and presented.user_handle is None
    verified = rp().verify_assertion(
        EC2_ASSERTION, challenge=EC2_CHALLENGE, public_key=EC2_KEY, require_user_verification=False
    )
    assert verified.sign_count == 78 and not verified.user_verified
    with pytest.raises(PasskeyRejected, match="User verification"):
        rp().verify_assertion(
            EC2_ASSERTION,
            challenge=EC2_CHALLENGE,
            public_key=EC2_KEY,
            require_user_verification=True,
        )


def test_an_rsa_assertion_with_user_verification_verifies() -> None:
    presented = rp().presented(RSA_ASSERTION)
    assert presented.user_handle == base64url_to_bytes(RSA_ASSERTION["response"]["userHandle"])  # type: ignore[index]
    verified = rp().verify_assertion(
        RSA_ASSERTION, challenge=RSA_CHALLENGE, public_key=RSA_KEY, require_user_verification=True
    )
    assert verified.user_verified and verified.sign_count == 1


@pytest.mark.parametrize(
    ("party", "challenge", "key", "reason"),
    [
        (rp(origin="http://localhost:8000"), EC2_CHALLENGE, EC2_KEY, "origin"),
        (rp(rp_id="notes.example"), EC2_CHALLENGE, EC2_KEY, "RP ID"),
        (rp(), RSA_CHALLENGE, EC2_KEY, "challenge"),
        (rp(), EC2_CHALLENGE, REGISTRATION_KEY, "signature"),  # another credential's key
    ],
)
def test_an_assertion_with_one_thing_wrong_is_refused(
    party: RelyingParty, challenge: bytes, key: bytes, reason: str
) -> None:
    with pytest.raises(PasskeyRejected, match=reason):
        party.verify_assertion(
            EC2_ASSERTION, challenge=challenge, public_key=key, require_user_verification=False
        )


@pytest.mark.parametrize(
    "garbage",
    ["", "{", "[]", "null", '{"id": 1}', '{"id":"x","rawId":"y","response":{}}', "x" * 100_000],
)
def test_malformed_responses_are_refused_not_crashed(garbage: str) -> None:
    with pytest.raises(PasskeyRejected):
        rp().verify_registration(garbage, challenge=REGISTRATION_CHALLENGE)
    with pytest.raises(PasskeyRejected):
        rp().presented(garbage)


def test_counter_rules_of_webauthn_l3_6_1_1() -> None:
    assert counter_outcome(0, 0) is CounterOutcome.NO_COUNTER
    assert counter_outcome(0, 1) is CounterOutcome.ADVANCED
    assert counter_outcome(77, 78) is CounterOutcome.ADVANCED
    assert counter_outcome(78, 78) is CounterOutcome.NOT_INCREASED
    assert counter_outcome(78, 3) is CounterOutcome.NOT_INCREASED
    assert counter_outcome(5, 0) is CounterOutcome.NOT_INCREASED  # a counter that stopped


def test_options_are_webauthn_json_for_our_rp() -> None:
    options = rp().registration_options(
        challenge=b"c" * 32, user_handle=b"u" * 32, user_name="alice", exclude=[EC2_ASSERTION["id"]]
    )
    assert options["rp"] == {"name": "notes-auth", "id": "localhost"}
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["attestation"] == "none"
    assert options["excludeCredentials"][0]["id"] == EC2_ASSERTION["id"]
    request = rp().authentication_options(challenge=b"c" * 32, user_verification="required")
    assert request["rpId"] == "localhost" and request["userVerification"] == "required"
    assert request["allowCredentials"] == []
