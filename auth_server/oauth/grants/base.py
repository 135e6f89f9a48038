"""What every grant handler receives and returns."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from auth_server.persistence.models import Client

if TYPE_CHECKING:
    from auth_server.context import AuthContext


@dataclass(frozen=True, slots=True)
class TokenRequest:
    params: Mapping[str, str]  # the form, each parameter present once (RFC 6749 §3.2)
    client: Client  # already authenticated
    ip: str | None
    user_agent: str | None


GrantHandler = Callable[["AuthContext", AsyncSession, TokenRequest], Awaitable[dict[str, Any]]]
