"""Small checks on untrusted text that several modules need, in one place.

`str.isdigit()` is True for "²" and other Unicode digits that `int()` refuses: a cursor or a
Content-Length of "²" must be a 4xx, never a 500.
"""

from __future__ import annotations


def is_ascii_number(text: str | bytes) -> bool:
    """Only the ASCII digits 0-9, at least one."""
    return bool(text) and text.isascii() and text.isdigit()


def has_nul(text: str) -> bool:
    """PostgreSQL can't store U+0000 in text; no stored field accepts it, on any database."""
    return "\x00" in text


__all__ = ["has_nul", "is_ascii_number"]
