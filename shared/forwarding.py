"""The client's address behind proxies: `X-Forwarded-For` is believed only from trusted peers.

Trusted proxies are addresses or CIDR ranges (`10.0.0.0/8`, `fd00::/8`). The right-most hop that
is not itself a trusted proxy is the client; a garbled hop stops the walk, and the last trusted
address is used (the header can't be trusted past it).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from functools import lru_cache

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=64)
def _parse(entries: tuple[str, ...]) -> tuple[Network, ...]:
    networks: list[Network] = []
    for entry in entries:
        text = entry.strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(f"not an address or CIDR range: {text!r}") from None
    return tuple(networks)


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """Addresses or CIDR ranges; ValueError names the first one that is neither."""
    return _parse(tuple(entries))


@lru_cache(maxsize=4096)
def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(text: str, networks: Sequence[Network]) -> bool:
    address = _address(text)
    return address is not None and any(address in network for network in networks)


def client_address(
    peer: str | None, forwarded_for: str | None, trusted: Sequence[Network]
) -> str | None:
    """The client's address, from the connection's `peer` and its `X-Forwarded-For`."""
    if peer is None or not trusted or not _trusted(peer, trusted):
        return peer
    last = peer
    for hop in reversed([h.strip() for h in (forwarded_for or "").split(",") if h.strip()]):
        address = _address(hop)
        if address is None:
            return last  # a forged or garbled header: no further than the last trusted hop
        if not any(address in network for network in trusted):
            return str(address)
        last = str(address)
    return last


__all__ = ["Network", "client_address", "parse_networks"]
