"""Dependencies of the auth server's routes (Annotated aliases, as in the FastAPI template)."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request, Security
from sqlalchemy.ext.asyncio import AsyncSession

from auth_server.context import AuthContext
from auth_server.persistence.models import User
from auth_server.sessions.service import token_is_revoked
from shared.claims import AccessTokenClaims
from shared.security import BearerAuth, BearerChallenge

bearer = BearerAuth(realm="notes-auth")


async def get_context(request: Request) -> AuthContext:
    ctx: AuthContext = request.app.state.ctx
    return ctx


ContextDep = Annotated[AuthContext, Depends(get_context)]


async def get_db(ctx: ContextDep) -> AsyncIterator[AsyncSession]:
    async with ctx.session_maker() as session:
        yield session


DbSession = Annotated[AsyncSession, Depends(get_db)]


def client_address(request: Request, trusted: list[str]) -> str | None:
    """The client's address. X-Forwarded-For is believed only when the peer is a trusted proxy,
    and then the right-most hop that is not itself a trusted proxy is the client."""
    peer = request.client.host if request.client else None
    if not trusted or peer is None or peer not in trusted:
        return peer
    forwarded = request.headers.get("x-forwarded-for", "")
    hops = [h.strip() for h in forwarded.split(",") if h.strip()]
    for hop in reversed(hops):
        if hop in trusted:
            continue
        try:
            return str(ipaddress.ip_address(hop))
        except ValueError:
            return peer  # a forged or garbled header: fall back to the proxy's address
    return peer


async def get_client_address(request: Request, ctx: ContextDep) -> str | None:
    return client_address(request, ctx.settings.trusted_proxies)


ClientAddress = Annotated[str | None, Depends(get_client_address)]


async def current_claims(
    request: Request,
    db: DbSession,
    claims: Annotated[AccessTokenClaims, Security(bearer)],
) -> AccessTokenClaims:
    """A verified access token whose session is still live and which was not revoked."""
    if await token_is_revoked(db, jti=claims.jti, sid=claims.sid, sub=claims.sub, iat=claims.iat):
        raise BearerChallenge(
            bearer.realm, error="invalid_token", description="the access token was revoked"
        )
    return claims


CurrentClaims = Annotated[AccessTokenClaims, Depends(current_claims)]


async def current_user(claims: CurrentClaims, db: DbSession) -> User:
    user = await db.get(User, claims.sub)
    if user is None:
        raise BearerChallenge(
            bearer.realm, error="invalid_token", description="the user no longer exists"
        )
    return user


CurrentUser = Annotated[User, Depends(current_user)]
