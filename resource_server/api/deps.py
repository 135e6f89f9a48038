"""Dependencies of the resource server's routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request, Security
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.claims import AccessTokenClaims
from shared.security import BearerAuth

bearer = BearerAuth(
    realm="notes-api",
    scopes={"notes:read": "read your notes", "notes:write": "create, change and delete your notes"},
)


async def get_db(request: Request) -> AsyncIterator[AsyncSession]:
    session_maker: async_sessionmaker[AsyncSession] = request.app.state.session_maker
    async with session_maker() as session:
        yield session


DbSession = Annotated[AsyncSession, Depends(get_db)]
Caller = Annotated[AccessTokenClaims, Security(bearer)]
Reader = Annotated[AccessTokenClaims, Security(bearer, scopes=["notes:read"])]
Writer = Annotated[AccessTokenClaims, Security(bearer, scopes=["notes:write"])]
