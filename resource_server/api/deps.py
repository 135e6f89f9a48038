"""Dependencies of the resource server's routes.

`DbSession` is the request's unit of work: it commits when the route returns (or answers with a
deliberate error) and rolls back on anything unexpected; the notes service only flushes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Annotated

from fastapi import Depends, Request, Security
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException

from resource_server.state import ResourceState
from shared.claims import AccessTokenClaims
from shared.fastapi import BearerAuth, BearerChallenge
from shared.forwarding import Network
from shared.refresh import TransparentRefresher
from shared.service.db import transaction
from shared.service.problem import ProblemError
from shared.verification import TokenVerifier

ANSWERS: tuple[type[BaseException], ...] = (ProblemError, BearerChallenge, HTTPException)


def resource_state(request: Request) -> ResourceState:
    state: ResourceState = request.app.state.resource
    return state


def _verifier(request: Request) -> TokenVerifier:
    return resource_state(request).verifier


def _refresher(request: Request) -> TransparentRefresher | None:
    return resource_state(request).refresher


def _trusted_proxies(request: Request) -> Sequence[Network]:
    return resource_state(request).settings.trusted_networks


bearer = BearerAuth(
    _verifier,
    realm="notes-api",
    refresher=_refresher,
    trusted_proxies=_trusted_proxies,
    scopes={"notes:read": "read your notes", "notes:write": "create, change and delete your notes"},
)


async def get_db(request: Request) -> AsyncIterator[AsyncSession]:
    async with transaction(resource_state(request).session_maker, commit_on=ANSWERS) as db:
        yield db


# scope="function": the unit of work ends (commits) before the response is sent (FastAPI's
# default for a dependency with yield ends it after the response).
DbSession = Annotated[AsyncSession, Depends(get_db, scope="function")]
Reader = Annotated[AccessTokenClaims, Security(bearer, scopes=["notes:read"])]
Writer = Annotated[AccessTokenClaims, Security(bearer, scopes=["notes:write"])]
