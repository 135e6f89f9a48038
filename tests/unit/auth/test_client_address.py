"""The client address behind proxies: X-Forwarded-For is believed only from trusted proxies,
named by address or CIDR range (shared.forwarding, used by both services)."""

from __future__ import annotations

import pytest

from auth_server.settings import AuthSettings
from shared.forwarding import client_address, parse_networks


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
        # CIDR ranges (the review: `10.0.0.0/8` was compared as a string and never matched).
        ("10.20.30.40", "198.51.100.1", ["10.0.0.0/8"], "198.51.100.1"),
        ("10.20.30.40", "198.51.100.1, 10.9.9.9", ["10.0.0.0/8"], "198.51.100.1"),
        ("11.0.0.1", "198.51.100.1", ["10.0.0.0/8"], "11.0.0.1"),
        ("fd00::1", "2001:db8::7", ["fd00::/8"], "2001:db8::7"),
        ("::ffff:10.0.0.1", "198.51.100.1", ["10.0.0.0/8"], "198.51.100.1"),  # v4-mapped peer
        ("10.0.0.1", "198.51.100.1, garbage, 10.0.0.3", ["10.0.0.0/8"], "10.0.0.3"),
    ],
)
def test_forwarded_for_is_believed_only_from_trusted_proxies(
    peer: str, forwarded: str | None, trusted: list[str], expected: str
) -> None:
    assert client_address(peer, forwarded, parse_networks(trusted)) == expected


def test_a_trusted_proxy_that_is_neither_an_address_nor_a_range_is_refused() -> None:
    with pytest.raises(ValueError, match=r"AUTH_TRUSTED_PROXIES|not an address"):
        AuthSettings(_env_file=None, trusted_proxies="10.0.0.0/8,proxy.internal")  # type: ignore[call-arg]
    settings = AuthSettings(_env_file=None, trusted_proxies="10.0.0.0/8, fd00::/8")  # type: ignore[call-arg]
    assert [str(n) for n in settings.trusted_networks] == ["10.0.0.0/8", "fd00::/8"]
