"""Dependencies of the auth server's routes (Annotated aliases, as in the FastAPI template).

Each route asks for the one collaborator it uses; they all come from the typed `AuthState` the
lifespan stored on the app. (The token endpoint, the busiest route, reads them from `auth_state`
directly: each dependency is solved again on every request.) `DbSession` is the request's unit
of work: it commits when the route returns or answers with a deliberate error (an OAuth error, a
problem, a bearer challenge, whose writes such as an audit record must stay), and rolls back on
anything unexpected.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request, Security
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException

from auth_server.oauth.clients import ClientAuthenticator
from auth_server.oauth.errors import OAuthError
from auth_server.oauth.introspection import TokenIntrospection
from auth_server.oauth.revocation import TokenRevocation
from auth_server.oauth.tokens import names_a_user
from auth_server.persistence.models import User
from auth_server.sessions.service import SessionService
from auth_server.settings import AuthSettings
from auth_server.state import AuthState
from auth_server.users.passwords import PasswordHasher
from auth_server.users.throttle import LoginThrottle
from shared.claims import AccessTokenClaims
from shared.fastapi import BearerAuth, BearerChallenge
from shared.forwarding import client_address
from shared.service.db import transaction
from shared.service.problem import Forbidden, ProblemError
from shared.verification import TokenVerifier, token_kid

# Errors that are answers: the request's writes (an audit record, an ended session) are kept.
ANSWERS: tuple[type[BaseException], ...] = (
    OAuthError,
    ProblemError,
    BearerChallenge,
    HTTPException,
)


def auth_state(request: Request) -> AuthState:
    state: AuthState = request.app.state.auth
    return state


def _verifier(request: Request) -> TokenVerifier:
    return auth_state(request).verifier


bearer = BearerAuth(_verifier, realm="notes-auth")


async def get_db(request: Request) -> AsyncIterator[AsyncSession]:
    async with transaction(auth_state(request).session_maker, commit_on=ANSWERS) as db:
        yield db


async def get_settings(request: Request) -> AuthSettings:
    return auth_state(request).settings


async def get_sessions(request: Request) -> SessionService:
    return auth_state(request).sessions


async def get_passwords(request: Request) -> PasswordHasher:
    return auth_state(request).passwords


async def get_clients(request: Request) -> ClientAuthenticator:
    return auth_state(request).clients


async def get_throttle(request: Request) -> LoginThrottle:
    return auth_state(request).throttle


async def get_revocation(request: Request) -> TokenRevocation:
    return auth_state(request).revocation


async def get_introspection(request: Request) -> TokenIntrospection:
    return auth_state(request).introspection


# scope="function": the unit of work ends (commits) before the response is sent. FastAPI's
# default for a dependency with yield ends it after the response, and a client could then use a
# token or a row that is not committed yet.
DbSession = Annotated[AsyncSession, Depends(get_db, scope="function")]
Settings = Annotated[AuthSettings, Depends(get_settings)]
Sessions = Annotated[SessionService, Depends(get_sessions)]
Passwords = Annotated[PasswordHasher, Depends(get_passwords)]
Clients = Annotated[ClientAuthenticator, Depends(get_clients)]
Throttle = Annotated[LoginThrottle, Depends(get_throttle)]
Revocation = Annotated[TokenRevocation, Depends(get_revocation)]
Introspection = Annotated[TokenIntrospection, Depends(get_introspection)]


def request_client_address(request: Request, settings: AuthSettings) -> str | None:
    """The client's address: X-Forwarded-For is believed only from AUTH_TRUSTED_PROXIES."""
    peer = request.client.host if request.client else None
    return client_address(peer, request.headers.get("x-forwarded-for"), settings.trusted_networks)


async def get_client_address(request: Request, settings: Settings) -> str | None:
    return request_client_address(request, settings)


ClientAddress = Annotated[str | None, Depends(get_client_address)]


async def get_user_agent(request: Request) -> str | None:
    return request.headers.get("user-agent")


UserAgent = Annotated[str | None, Depends(get_user_agent)]


async def current_claims(
    request: Request,
    db: DbSession,
    sessions: Sessions,
    claims: Annotated[AccessTokenClaims, Security(bearer)],
) -> AccessTokenClaims:
    """A verified access token of a user, whose session is still live and which was not revoked
    (nor its signing key retired in an emergency: this server may not have reloaded its keys
    yet). Every route that asks for it is an account or admin route, which a token with no user
    (client credentials) may not use: 403 (contract §8.2)."""
    _, _, token = (request.headers.get("authorization") or "").strip().partition(" ")
    if await sessions.token_is_revoked(
        db,
        jti=claims.jti,
        sid=claims.sid,
        sub=claims.sub,
        iat=claims.iat,
        kid=token_kid(token.strip()),
    ):
        raise bearer.challenge(error="invalid_token", description="the access token was revoked")
    if not names_a_user(claims):
        raise Forbidden("this route needs a user's token; a client-credentials token has no user")
    return claims


CurrentClaims = Annotated[AccessTokenClaims, Depends(current_claims)]
# The answer of every route that takes CurrentClaims (or CurrentUser) to a token with no user.
NO_USER_403 = "The token has no user (client credentials)."


async def current_user(claims: CurrentClaims, db: DbSession) -> User:
    user = await db.get(User, claims.sub)
    if user is None:
        raise bearer.challenge(error="invalid_token", description="the user no longer exists")
    return user


CurrentUser = Annotated[User, Depends(current_user)]
