"""TOTP (RFC 6238) with pyotp: seeds, the otpauth URI and its QR code, and matching a code to
its time step. Storage and replay protection are the repository's (`use_totp_step`): this module
only says which step a code belongs to.

The parameters are the ones every authenticator app understands: HMAC-SHA-1, 6 digits, 30 s
steps (RFC 6238 §4, §5.2). The seed is 160 random bits, RFC 4226 §4's recommended length.
"""

from __future__ import annotations

import re
import time

import pyotp
import segno
from pyotp.utils import strings_equal

DIGITS = 6
PERIOD = 30  # seconds per time step (RFC 6238 §4.1, X)
# RFC 6238 §5.2 allows for clock drift; the issue allows at most one step either way, so three
# codes are good at any moment (the throttle and the lock are sized for that).
DRIFT_STEPS = 1
SEED_CHARS = 32  # base32 characters: 160 bits

_CODE = re.compile(rf"^[0-9]{{{DIGITS}}}$")


def new_seed() -> str:
    """A fresh base32 seed (pyotp draws it from `secrets`)."""
    return pyotp.random_base32(SEED_CHARS)


def _totp(seed: str) -> pyotp.TOTP:
    return pyotp.TOTP(seed, digits=DIGITS, interval=PERIOD)


def provisioning_uri(seed: str, *, account: str, issuer: str) -> str:
    """The `otpauth://totp/...` URI of Google Authenticator's key URI format, which every
    authenticator app reads from a QR code."""
    return _totp(seed).provisioning_uri(name=account, issuer_name=issuer)


def qr_code_svg(uri: str, *, title: str = "QR code for your authenticator app") -> str:
    """The URI as an inline SVG element, drawn here: no CDN, no script, no image request (a
    strict CSP allows it as it is)."""
    qr = segno.make(uri, error="m", micro=False)
    svg: str = qr.svg_inline(scale=4, border=4, title=title, dark="#000", light="#fff")
    return svg


def normalize_code(code: str) -> str | None:
    """The code as typed (spaces and a middle hyphen are allowed), or None when it isn't six
    digits: `123 456` and `123-456` are `123456`."""
    compact = code.replace(" ", "").replace("-", "").strip()
    return compact if _CODE.match(compact) else None


def current_step(now: float) -> int:
    return int(now // PERIOD)


def matching_step(seed: str, code: str, now: float | None = None) -> int | None:
    """The time step whose code `code` is, within DRIFT_STEPS of `now`; None if none is. When
    two steps of the window share a code (a one-in-a-million coincidence), the later one: it
    replays nothing that an earlier one would not."""
    normalized = normalize_code(code)
    if normalized is None:
        return None
    totp = _totp(seed)
    step = current_step(time.time() if now is None else now)
    for candidate in range(step + DRIFT_STEPS, step - DRIFT_STEPS - 1, -1):
        # Constant time per comparison (pyotp's strings_equal is hmac.compare_digest).
        if strings_equal(normalized, totp.generate_otp(candidate)):
            return candidate
    return None


def code_at(seed: str, step: int) -> str:
    """The code of one time step (for tests and for an operator's checks)."""
    return _totp(seed).generate_otp(step)


__all__ = [
    "DIGITS",
    "DRIFT_STEPS",
    "PERIOD",
    "code_at",
    "current_step",
    "matching_step",
    "new_seed",
    "normalize_code",
    "provisioning_uri",
    "qr_code_svg",
]
