"""The verified claims of an RFC 9068 access token."""

from __future__ import annotations

from functools import cached_property

from pydantic import BaseModel, ConfigDict


class AccessTokenClaims(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", ignored_types=(cached_property,))

    iss: str
    sub: str
    aud: str | list[str]
    exp: int
    iat: int
    nbf: int | None = None
    jti: str
    client_id: str
    scope: str = ""
    sid: str | None = None

    @cached_property
    def scopes(self) -> frozenset[str]:
        return frozenset(self.scope.split())


__all__ = ["AccessTokenClaims"]
