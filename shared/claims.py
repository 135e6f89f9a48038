"""The verified claims of an RFC 9068 access token.

A plain frozen dataclass, checked by hand: the core library needs no validation framework, and
the checks are few and exact (RFC 7519 §2 NumericDate may be any JSON number, never a string or
a boolean).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class ClaimsError(ValueError):
    """A claim is missing or has the wrong type."""


def _string(payload: Mapping[str, Any], name: str, *, required: bool = True) -> str | None:
    value = payload.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise ClaimsError(f"the {name!r} claim must be a string")
    return value


def _numeric_date(payload: Mapping[str, Any], name: str, *, required: bool = True) -> int | None:
    value = payload.get(name)
    if value is None and not required:
        return None
    # bool is an int subclass in Python; `true` is not a date.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ClaimsError(f"the {name!r} claim must be a number")
    return int(value)


def _audience(payload: Mapping[str, Any]) -> str | tuple[str, ...]:
    value = payload.get("aud")
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ClaimsError("the 'aud' claim must be a string or a list of strings")


@dataclass(frozen=True, slots=True)
class AccessTokenClaims:
    iss: str
    sub: str
    aud: str | tuple[str, ...]
    exp: int
    iat: int
    jti: str
    client_id: str
    scope: str = ""
    sid: str | None = None
    nbf: int | None = None
    scopes: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "scopes", frozenset(self.scope.split()))

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> AccessTokenClaims:
        """The claims of a decoded payload; ClaimsError when one has the wrong type."""
        return cls(
            iss=_string(payload, "iss") or "",
            sub=_string(payload, "sub") or "",
            aud=_audience(payload),
            exp=_numeric_date(payload, "exp") or 0,
            iat=_numeric_date(payload, "iat") or 0,
            jti=_string(payload, "jti") or "",
            client_id=_string(payload, "client_id") or "",
            scope=_string(payload, "scope", required=False) or "",
            sid=_string(payload, "sid", required=False),
            nbf=_numeric_date(payload, "nbf", required=False),
        )


__all__ = ["AccessTokenClaims", "ClaimsError"]
