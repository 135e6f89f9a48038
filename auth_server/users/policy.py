"""The password policy: 10 to 1024 characters, and not one of the 10,000 most common passwords.

`common_passwords.txt` ships in the package: the 10,000 highest-ranked entries of the
`passwords` frequency list that zxcvbn (Dropbox) compiled from public password corpora.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache
from pathlib import Path

MIN_LENGTH, MAX_LENGTH = 10, 1024


class WeakPassword(ValueError):
    pass


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    path = Path(__file__).with_name("common_passwords.txt")
    return frozenset(
        line.strip().casefold() for line in path.read_text().splitlines() if line.strip()
    )


def check_password(password: str, *, username: str | None = None, email: str | None = None) -> None:
    length = len(unicodedata.normalize("NFC", password))
    if length < MIN_LENGTH:
        raise WeakPassword(f"the password must be at least {MIN_LENGTH} characters")
    if length > MAX_LENGTH:
        raise WeakPassword(f"the password must be at most {MAX_LENGTH} characters")
    if password.casefold() in common_passwords():
        raise WeakPassword("the password is one of the most common passwords")
    lowered = password.casefold()
    if username and lowered == username.casefold():
        raise WeakPassword("the password must not be the username")
    if email and lowered == email.casefold():
        raise WeakPassword("the password must not be the email address")
