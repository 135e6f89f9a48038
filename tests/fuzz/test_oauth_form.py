"""Issue 9: the token endpoint's form parser (RFC 6749 §3.2, appendix B) under hypothesis.

`read_oauth_form` turns any body into either the form's parameters or an RFC 6749
`invalid_request`, never another exception; and POST /token answers any body with a 4xx RFC 6749
JSON error, never a 5xx.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from schemathesis.python import asgi
from starlette.requests import Request

from auth_server.api.forms import read_oauth_form
from auth_server.api.openapi import OAUTH_ERROR_CODES
from auth_server.oauth.errors import InvalidRequest
from tests.fuzz.harness import FuzzTarget

FORM = "application/x-www-form-urlencoded"
MAX_FIELD = 64  # small, so that hypothesis reaches the limit
BOUNDED = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def parse(body: bytes, content_type: str | None = FORM) -> dict[str, str]:
    headers = [] if content_type is None else [(b"content-type", content_type.encode("latin-1"))]
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if delivered:
            return {"type": "http.disconnect"}
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    request = Request({"type": "http", "method": "POST", "headers": headers}, receive)
    return asyncio.run(read_oauth_form(request, MAX_FIELD))


def outcome(body: bytes, content_type: str | None = FORM) -> dict[str, str] | InvalidRequest:
    """The form, or the InvalidRequest; any other exception fails the test."""
    try:
        return parse(body, content_type)
    except InvalidRequest as refused:
        return refused


names = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=8)
values = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=MAX_FIELD)
pairs = st.lists(st.tuples(names, values), max_size=8)


@BOUNDED
@given(st.binary(max_size=512))
@example(b"a=%ff")
@example(b"\xff=1")
@example(b"a=1&a=2")
@example(b"a=%00")
@example(b"&".join([b"x%d=1" % i for i in range(51)]))
def test_any_body_is_a_form_or_an_invalid_request(body: bytes) -> None:
    result = outcome(body)
    if isinstance(result, InvalidRequest):
        assert result.error == "invalid_request"
        assert result.status_code == 400
        return
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in result.items())
    assert all(v != "" for v in result.values())  # §3.2: an empty value is an absent one
    assert all("\x00" not in k + v for k, v in result.items())
    assert all(len(v) <= MAX_FIELD and len(k) <= 64 for k, v in result.items())
    assert len(result) <= 50


@BOUNDED
@given(pairs.filter(lambda ps: len({n for n, _ in ps}) == len(ps)))
def test_a_well_formed_form_reads_back(form: list[tuple[str, str]]) -> None:
    body = urlencode(form, quote_via=quote).encode()
    assert outcome(body) == {name: value for name, value in form if value != ""}


@BOUNDED
@given(pairs, names, values, values)
def test_a_repeated_parameter_is_refused(
    form: list[tuple[str, str]], name: str, first: str, second: str
) -> None:
    # RFC 6749 §3.2: "Request and response parameters MUST NOT be included more than once."
    body = urlencode([*form, (name, first), (name, second)], quote_via=quote).encode()
    assert isinstance(outcome(body), InvalidRequest)


@BOUNDED
@given(pairs, st.sampled_from(["%00", "\x00"]), st.booleans())
def test_nul_is_refused(form: list[tuple[str, str]], nul: str, in_name: bool) -> None:
    extra = f"a{nul}b=1" if in_name else f"nul=a{nul}b"
    body = "&".join([urlencode(form, quote_via=quote), extra]).encode()
    assert isinstance(outcome(body), InvalidRequest)


@BOUNDED
@given(pairs, st.binary(min_size=1, max_size=8).filter(lambda b: not _utf8(b)), st.booleans())
def test_text_that_is_not_utf8_is_refused(
    form: list[tuple[str, str]], raw: bytes, percent_encoded: bool
) -> None:
    bad = quote(raw).encode() if percent_encoded else raw
    body = b"&".join([urlencode(form, quote_via=quote).encode(), b"x=" + bad])
    assert isinstance(outcome(body), InvalidRequest)


@BOUNDED
@given(values.map(lambda v: v + "x" * (MAX_FIELD + 1 - len(v))))
def test_a_value_over_the_limit_is_refused(value: str) -> None:
    assert isinstance(outcome(urlencode({"v": value}, quote_via=quote).encode()), InvalidRequest)


@BOUNDED
@given(
    st.one_of(
        st.none(),
        st.sampled_from(["application/json", "text/plain", "multipart/form-data", ""]),
        st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40),
    ).filter(lambda ct: ct is None or ct.split(";")[0].strip().lower() != FORM)
)
def test_anything_but_a_urlencoded_body_is_refused(content_type: str | None) -> None:
    assert isinstance(outcome(b"grant_type=password", content_type), InvalidRequest)


def _utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# POST /token, on the fuzz app (tests/fuzz/conftest.py): any body, well formed or not.
GRANTS = ["password", "refresh_token", "client_credentials", "authorization_code", ""]
token_fields = st.dictionaries(
    st.sampled_from(
        [
            *("grant_type", "username", "password", "refresh_token", "scope"),
            *("client_id", "client_secret", "sid"),
        ]
    ),
    st.one_of(
        st.sampled_from([*GRANTS, "web", "web-page", "notes:read admin", "fuzzer"]),
        st.text(max_size=40),
    ),
)
token_bodies = st.one_of(
    st.binary(max_size=300),
    token_fields.map(lambda form: urlencode(form).encode()),
    st.tuples(token_fields, st.text(max_size=40)).map(
        lambda both: (urlencode(both[0]) + "&" + both[1]).encode("utf-8", "surrogatepass")
    ),
)
content_types = st.sampled_from(
    [FORM, f"{FORM}; charset=utf-8", "application/json", "text/plain", None]
)


@pytest.fixture(scope="session")
def token_client(auth_target: FuzzTarget) -> Any:
    with asgi.get_client(auth_target.app) as client:
        yield client


@settings(BOUNDED, max_examples=120)
@given(body=token_bodies, content_type=content_types)
def test_any_body_at_the_token_endpoint_is_a_4xx_oauth_error(
    token_client: Any, body: bytes, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = token_client.post("/token", data=body, headers=headers)
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"] in OAUTH_ERROR_CODES
    assert response.headers["cache-control"] == "no-store"
