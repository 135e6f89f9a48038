"""TokenVerifier against the attacks of RFC 8725 §2 and §3, with keys the tests generate."""

from __future__ import annotations

import base64
import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from shared.errors import TokenError
from shared.keys import StaticKeySet, VerificationKey
from shared.verification import TokenVerifier
from tests.unit.shared.conftest import (
    AUDIENCE,
    ISSUER,
    KID,
    RecordingMetrics,
    TokenFactory,
    claims,
)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    return ".".join(
        (b64(json.dumps(header).encode()), b64(json.dumps(payload).encode()), b64(signature))
    )


async def refused(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(TokenError) as caught:
        await verifier.verify(token)
    assert not token or token not in caught.value.description
    return caught.value.reason


async def test_a_good_token_verifies_into_typed_claims(
    verifier: TokenVerifier, make_token: TokenFactory
) -> None:
    result = await verifier.verify(make_token())
    assert result.sub == "user-1" and result.client_id == "web" and result.sid == "session-1"
    assert result.scopes == frozenset({"notes:read", "notes:write"})


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
async def test_alg_none_in_any_case_is_refused(verifier: TokenVerifier, alg: str) -> None:
    token = forge({"alg": alg, "typ": "at+jwt", "kid": KID}, claims())
    assert await refused(verifier, token) == "alg_not_allowed"


def _hs256_with(secret: bytes) -> str:
    import hashlib
    import hmac

    header = b64(json.dumps({"alg": "HS256", "typ": "at+jwt", "kid": KID}).encode())
    payload = b64(json.dumps(claims()).encode())
    signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(signature)}"


@pytest.mark.parametrize("form", ["pem", "der", "jwk"])
async def test_hs256_keyed_with_our_public_key_is_refused(
    verifier: TokenVerifier, rsa_key: rsa.RSAPrivateKey, form: str
) -> None:
    public = rsa_key.public_key()
    secret = {
        "pem": public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "der": public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "jwk": json.dumps(
            json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public)) | {"kid": KID}
        ).encode(),
    }[form]
    assert await refused(verifier, _hs256_with(secret)) == "alg_not_allowed"


async def test_a_tampered_payload_is_refused(
    verifier: TokenVerifier, make_token: TokenFactory
) -> None:
    header, _, signature = make_token().split(".")
    evil = b64(json.dumps(claims(sub="admin", scope="admin")).encode())
    assert await refused(verifier, f"{header}.{evil}.{signature}") == "bad_signature"


async def test_a_stripped_signature_is_refused(
    verifier: TokenVerifier, make_token: TokenFactory
) -> None:
    header, payload, _ = make_token().split(".")
    assert await refused(verifier, f"{header}.{payload}.") in ("bad_signature", "malformed")
    assert await refused(verifier, f"{header}.{payload}") == "malformed"


async def test_an_attackers_key_under_our_kid_is_refused(
    verifier: TokenVerifier, make_token: TokenFactory, attacker_key: rsa.RSAPrivateKey
) -> None:
    assert await refused(verifier, make_token(key=attacker_key)) == "bad_signature"


async def test_an_embedded_jwk_is_never_used(
    verifier: TokenVerifier, make_token: TokenFactory, attacker_key: rsa.RSAPrivateKey
) -> None:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(attacker_key.public_key()))
    token = make_token(key=attacker_key, headers={"jwk": jwk})
    assert await refused(verifier, token) == "forbidden_header"


class _Recorder(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:
        _Recorder.hits.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'{"keys": []}')

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def live_key_server() -> Iterator[str]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Recorder)
    _Recorder.hits = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.parametrize("header", ["jku", "x5u"])
async def test_jku_and_x5u_are_never_fetched(
    verifier: TokenVerifier,
    make_token: TokenFactory,
    attacker_key: rsa.RSAPrivateKey,
    live_key_server: str,
    header: str,
) -> None:
    token = make_token(key=attacker_key, headers={header: f"{live_key_server}/keys.json"})
    assert await refused(verifier, token) == "forbidden_header"
    time.sleep(0.1)
    assert _Recorder.hits == []


async def test_x5c_is_refused(verifier: TokenVerifier, make_token: TokenFactory) -> None:
    assert await refused(verifier, make_token(headers={"x5c": ["MIIB"]})) == "forbidden_header"


@pytest.mark.parametrize(
    "kid",
    ["../../../../etc/passwd", "' OR '1'='1", "key-1'; DROP TABLE keys;--", "\x00", "k" * 300],
)
async def test_hostile_kids_find_no_key(
    verifier: TokenVerifier, make_token: TokenFactory, kid: str
) -> None:
    assert await refused(verifier, make_token(headers={"kid": kid})) == "unknown_kid"


async def test_a_missing_kid_is_refused(
    verifier: TokenVerifier, rsa_key: rsa.RSAPrivateKey
) -> None:
    token = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"typ": "at+jwt"})
    assert await refused(verifier, token) == "unknown_kid"


async def test_es256_all_zero_signature_is_refused(ec_key: ec.EllipticCurvePrivateKey) -> None:
    verifier = TokenVerifier(
        issuer=ISSUER,
        audience=AUDIENCE,
        key_source=StaticKeySet([VerificationKey("ec-1", ec_key.public_key(), "ES256", "EC")]),
        algorithms=("ES256",),
    )
    good = jwt.encode(claims(), ec_key, algorithm="ES256", headers={"kid": "ec-1", "typ": "at+jwt"})
    assert (await verifier.verify(good)).sub == "user-1"
    header, payload, _ = good.split(".")
    assert await refused(verifier, f"{header}.{payload}.{b64(bytes(64))}") == "bad_signature"


async def test_an_algorithm_that_does_not_fit_the_key_is_refused(
    rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    verifier = TokenVerifier(
        issuer=ISSUER,
        audience=AUDIENCE,
        key_source=StaticKeySet([VerificationKey(KID, rsa_key.public_key(), None)]),
        algorithms=("RS256", "ES256"),
    )
    token = jwt.encode(claims(), ec_key, algorithm="ES256", headers={"kid": KID, "typ": "at+jwt"})
    assert await refused(verifier, token) == "alg_not_allowed"


def test_none_and_hmac_can_never_be_configured(key_set: StaticKeySet) -> None:
    for algorithms in (("none",), ("HS256",), ("RS256", "HS512")):
        with pytest.raises(ValueError, match="unsupported"):
            TokenVerifier(
                issuer=ISSUER, audience=AUDIENCE, key_source=key_set, algorithms=algorithms
            )


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"iss": "https://evil.example.com"}, "bad_issuer"),
        ({"iss": ISSUER + "/"}, "bad_issuer"),
        ({"aud": "another-api"}, "bad_audience"),
        ({"aud": ["another-api", "third"]}, "bad_audience"),
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"nbf": int(time.time()) + 3600}, "not_yet_valid"),
        ({"iat": int(time.time()) + 3600}, "issued_in_future"),
        ({"iss": None}, "missing_claim"),
        ({"sub": None}, "missing_claim"),
        ({"aud": None}, "missing_claim"),
        ({"exp": None}, "missing_claim"),
        ({"iat": None}, "missing_claim"),
        ({"jti": None}, "missing_claim"),
        ({"client_id": None}, "missing_claim"),
        ({"exp": "tomorrow"}, "malformed"),
    ],
)
async def test_bad_claims_are_refused_with_their_reason(
    verifier: TokenVerifier, make_token: TokenFactory, overrides: dict[str, Any], reason: str
) -> None:
    assert await refused(verifier, make_token(**overrides)) == reason


async def test_audience_lists_that_contain_ours_are_accepted(
    verifier: TokenVerifier, make_token: TokenFactory
) -> None:
    assert (await verifier.verify(make_token(aud=["other", AUDIENCE]))).sub == "user-1"


async def test_leeway_allows_small_clock_skew(
    verifier: TokenVerifier, make_token: TokenFactory
) -> None:
    assert (await verifier.verify(make_token(exp=int(time.time()) - 10))).sub == "user-1"
    assert (await verifier.verify(make_token(nbf=int(time.time()) + 10))).sub == "user-1"


@pytest.mark.parametrize("typ", [None, "JWT", "jwt", "at+jwt+x"])
async def test_a_token_that_is_not_an_access_token_is_refused(
    verifier: TokenVerifier, rsa_key: rsa.RSAPrivateKey, typ: str | None
) -> None:
    headers: dict[str, Any] = {"kid": KID} | ({"typ": typ} if typ else {})
    token = jwt.encode(claims(), rsa_key, algorithm="RS256", headers=headers)
    if typ is None:
        # PyJWT adds typ=JWT by default; drop it to test a missing typ.
        header = {"alg": "RS256", "kid": KID}
        h = b64(json.dumps(header).encode())
        _, payload, signature = token.split(".")
        token = f"{h}.{payload}.{signature}"
    assert await refused(verifier, token) == "bad_typ"


@pytest.mark.parametrize("typ", ["at+jwt", "AT+JWT", "application/at+jwt"])
async def test_rfc9068_typ_forms_are_accepted(
    verifier: TokenVerifier, make_token: TokenFactory, typ: str
) -> None:
    assert (await verifier.verify(make_token(headers={"typ": typ}))).sub == "user-1"


async def test_crit_headers_are_refused(verifier: TokenVerifier, make_token: TokenFactory) -> None:
    assert (
        await refused(verifier, make_token(headers={"crit": ["exp"], "exp": 1}))
        == "crit_unsupported"
    )


@pytest.mark.parametrize("token", ["", "abc", "a.b", "a.b.c.d", "....", "eyJ.eyJ.sig", "x" * 20000])
async def test_garbage_is_malformed(verifier: TokenVerifier, token: str) -> None:
    assert await refused(verifier, token) in ("malformed", "bad_typ")


async def test_failures_are_reported_to_the_metrics_hook_by_reason(
    key_set: StaticKeySet, make_token: TokenFactory
) -> None:
    metrics = RecordingMetrics()
    verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, key_source=key_set, metrics=metrics)
    await refused(verifier, make_token(aud="x"))
    await refused(verifier, make_token(aud="x"))
    await refused(verifier, make_token(iss="someone-else"))
    assert metrics.counts == {("refused", "bad_audience"): 2, ("refused", "bad_issuer"): 1}
