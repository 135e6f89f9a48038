"""The client address behind proxies: X-Forwarded-For is believed only from trusted proxies."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from auth_server.api.deps import client_address


def request(peer: str, forwarded: str | None = None) -> Request:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded is not None else []
    return Request({"type": "http", "client": (peer, 1234), "headers": headers})


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "expected"),
    [
        ("203.0.113.9", "198.51.100.1", [], "203.0.113.9"),  # no proxies trusted: header ignored
        ("203.0.113.9", "198.51.100.1", ["10.0.0.1"], "203.0.113.9"),  # peer is not a proxy
        ("10.0.0.1", "198.51.100.1", ["10.0.0.1"], "198.51.100.1"),
        (
            "10.0.0.1",
            "6.6.6.6, 198.51.100.1",
            ["10.0.0.1"],
            "198.51.100.1",
        ),  # right-most untrusted hop
        ("10.0.0.1", "198.51.100.1, 10.0.0.2", ["10.0.0.1", "10.0.0.2"], "198.51.100.1"),
        ("10.0.0.1", "not-an-ip", ["10.0.0.1"], "10.0.0.1"),  # garbage: the proxy's own address
        ("10.0.0.1", "", ["10.0.0.1"], "10.0.0.1"),
        ("10.0.0.1", None, ["10.0.0.1"], "10.0.0.1"),
    ],
)
def test_forwarded_for_is_believed_only_from_trusted_proxies(
    peer: str, forwarded: str | None, trusted: list[str], expected: str
) -> None:
    assert client_address(request(peer, forwarded), trusted) == expected
