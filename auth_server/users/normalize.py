"""Usernames and emails in one canonical form, so that look-alikes are one identity.

Usernames are NFKC-normalized and case-folded before they are stored, compared or throttled:
`Alice`, `ALICE` and `alice` in fullwidth forms are the same name (Unicode TR #15, UTS #39).
"""

from __future__ import annotations

import re
import unicodedata

from email_validator import EmailNotValidError, validate_email

USERNAME_MIN, USERNAME_MAX = 3, 64
# Control, format, separators other than space, private-use, surrogates, unassigned.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Co", "Cs", "Cn"})
_ALLOWED = re.compile(r"^[\w.\-@+]+$")


class InvalidIdentifier(ValueError):
    pass


def canonical_username(raw: str) -> str:
    """The stored and compared form of a login name (no validation: used for look-ups too, so
    that sign-up and login always agree). Case folding may leave a string that is not NFKC any
    more ("ΐ" folds to three code points), so it is normalized again, to a fixed point."""
    name = unicodedata.normalize("NFKC", raw).strip()
    for _ in range(3):
        folded = unicodedata.normalize("NFKC", name.casefold()).strip()
        if folded == name:
            break
        name = folded
    return name


# The longest login key stored (login_names.name): an email's canonical form may be longer than
# the email (NFKC expands some characters), and such an email is refused.
LOGIN_KEY_MAX = 320


def login_key(raw: str) -> str:
    """The form in which a login string is compared with every account's username and email:
    NFKC and case folding (`canonical_username`), for both. Usernames are stored in it already;
    an email's key is that of its normalized form. One function for both kinds, so that a
    username can never look, to a login, like someone else's email."""
    return canonical_username(raw)


def validate_username(raw: str) -> str:
    if any(unicodedata.category(ch) in _REFUSED_CATEGORIES for ch in raw):
        raise InvalidIdentifier("the username contains control or invisible characters")
    name = canonical_username(raw)
    if not USERNAME_MIN <= len(name) <= USERNAME_MAX:
        raise InvalidIdentifier(f"the username must be {USERNAME_MIN} to {USERNAME_MAX} characters")
    if not _ALLOWED.match(name):
        raise InvalidIdentifier("the username may contain letters, digits and . _ - @ + only")
    return name


def validate_email_address(raw: str) -> tuple[str, str]:
    """(the email as given but normalized by email-validator, its lower-cased uniqueness key)."""
    if any(unicodedata.category(ch) in _REFUSED_CATEGORIES for ch in raw):
        raise InvalidIdentifier("the email address contains control or invisible characters")
    try:
        result = validate_email(raw, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidIdentifier(f"the email address is not valid: {exc}") from None
    if len(login_key(result.normalized)) > LOGIN_KEY_MAX:
        raise InvalidIdentifier("the email address is too long")
    return result.normalized, result.normalized.casefold()
