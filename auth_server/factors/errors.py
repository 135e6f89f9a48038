"""The factors' domain errors. Each is raised after what it must leave behind (an audit record,
a counted failure) was added to the caller's unit of work, which commits it: a refusal is an
answer, not an accident."""

from __future__ import annotations


class FactorError(Exception):
    """Something a person or client did that the factors refuse."""


class ReauthenticationRequired(FactorError):
    """Adding or removing a factor needs a sign-in within AUTH_REAUTH_MAX_AGE seconds."""

    def __init__(self, max_age: int) -> None:
        super().__init__(f"sign in again: a factor change needs a sign-in within {max_age}s")
        self.max_age = max_age


class WrongCode(FactorError):
    """The code is wrong, was used already, or is from a time step that was used already: one
    error for all of them, so that an observer can't tell which."""


class FactorLocked(FactorError):
    """NIST SP 800-63B §5.2.2: the factor failed 100 times in a row and stays locked until its
    owner enrols it again or an operator resets it."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"the {kind} factor is locked after too many failures")
        self.kind = kind


class FactorThrottled(FactorError):
    """Too many wrong codes for this account or from this address in the window."""

    def __init__(self, retry_after: int, refused_so_far: int = 1) -> None:
        super().__init__(f"retry after {retry_after}s")
        self.retry_after = retry_after
        self.refused_so_far = refused_so_far

    @property
    def report(self) -> bool:
        """Refusals are audited in aggregate: the 1st, 2nd, 4th, 8th... of a window."""
        n = self.refused_so_far
        return n > 0 and n & (n - 1) == 0


class PasskeyRejected(FactorError):
    """A WebAuthn ceremony failed: its challenge (unknown, expired, used, or started by someone
    else), or its response (origin, RP ID, signature, flags, another account's credential)."""


class NotEnrolled(FactorError):
    """The factor, enrolment or passkey named doesn't exist for this account."""


class InvalidName(FactorError):
    """A passkey's name must be 1 to 64 printable characters."""


class TooManyPasskeys(FactorError):
    """An account holds at most MAX_PASSKEYS passkeys."""


__all__ = [
    "FactorError",
    "FactorLocked",
    "FactorThrottled",
    "InvalidName",
    "NotEnrolled",
    "PasskeyRejected",
    "ReauthenticationRequired",
    "TooManyPasskeys",
    "WrongCode",
]
