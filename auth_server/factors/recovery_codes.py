"""Recovery codes: ten single-use codes, shown once, for the day the phone is lost.

Each code is 13 characters of RFC 4648 base32 (65 random bits), shown in groups of 4-4-5
(`ABCD-EFGH-IJKLM`) and accepted in any case, with or without the hyphens and spaces.

Only a keyed hash is stored: HMAC-SHA-256 under a key derived from AUTH_KEY_ENCRYPTION_KEY, over
the account's id and the code. A fast hash is enough here *only because of the entropy*: 65
random bits take about 2^64 guesses per code on average, beyond any offline attack on a stolen
database, while a short code (8 digits, say) under a fast hash would fall in seconds and would
need Argon2. The key adds that a database dump alone can't test guesses at all, and the account's
id that a hash can't be moved to another account.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from auth_server.keys.crypto import derive_key

COUNT = 10
LENGTH = 13  # characters of base32: 5 bits each, 65 bits in all
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"  # RFC 4648 §6
GROUPS = (4, 4, 5)
LOW = 3  # the account page warns when this many or fewer remain
BITS = LENGTH * 5
_LOOKALIKES = str.maketrans({"0": "O", "1": "I", "8": "B"})

assert sum(GROUPS) == LENGTH and BITS >= 60  # the floor: at least 60 bits per code


def generate() -> list[str]:
    """COUNT fresh codes, as shown to the person (grouped with hyphens)."""
    return [
        _display("".join(secrets.choice(ALPHABET) for _ in range(LENGTH))) for _ in range(COUNT)
    ]


def _display(compact: str) -> str:
    parts, start = [], 0
    for size in GROUPS:
        parts.append(compact[start : start + size])
        start += size
    return "-".join(parts)


def normalize(code: str) -> str | None:
    """The code in canonical form (upper case, no separators), or None when it can't be one.
    Base32 has no 0, 1 or 8: read as the letters they are mistaken for."""
    compact = "".join(code.split()).replace("-", "").upper().translate(_LOOKALIKES)
    if len(compact) != LENGTH or any(char not in ALPHABET for char in compact):
        return None
    return compact


class RecoveryCodeHasher:
    def __init__(self, key_encryption_secret: bytes) -> None:
        self._key = derive_key(key_encryption_secret, "notes-auth recovery codes v1")

    def hash(self, user_id: str, code: str) -> str | None:
        """The stored form of `code` for this account, or None when `code` can't be one."""
        compact = normalize(code)
        if compact is None:
            return None
        message = f"{user_id}\x00{compact}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()


__all__ = ["BITS", "COUNT", "LENGTH", "LOW", "RecoveryCodeHasher", "generate", "normalize"]
