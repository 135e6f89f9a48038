"""What every grant receives and returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from auth_server.oauth.clients import ClientRecord


@dataclass(frozen=True, slots=True)
class TokenRequest:
    params: Mapping[str, str]  # the form, each parameter present once (RFC 6749 §3.2)
    client: ClientRecord  # already authenticated
    ip: str | None
    user_agent: str | None


class Grant(Protocol):
    """One grant type: the RFC 6749 §5.1 response body, or an OAuthError."""

    async def __call__(self, db: AsyncSession, req: TokenRequest) -> dict[str, Any]: ...
