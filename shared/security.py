"""FastAPI glue: bearer-token dependencies with RFC 6750 challenges, and transparent refresh.

    bearer = BearerAuth(realm="notes-api")
    @app.get("/things")
    async def things(claims: Annotated[AccessTokenClaims, Security(bearer, scopes=["x"])]): ...

The verifier comes from `app.state.token_verifier` and the optional refresher from
`app.state.token_refresher`, both built in the app's lifespan; `app.state.refresh_retry_after`
(seconds, default 5) is the Retry-After sent when the auth server can't be reached.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.models import OAuth2 as OAuth2Model
from fastapi.openapi.models import OAuthFlowPassword, OAuthFlows
from fastapi.security import SecurityScopes
from fastapi.security.base import SecurityBase
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.claims import AccessTokenClaims
from shared.errors import TokenError
from shared.problem import ServiceUnavailable, problem_response
from shared.refresh import AuthServerUnavailable, RefreshRejected, TransparentRefresher
from shared.verification import TokenVerifier

NEW_TOKEN_HEADERS = ("New-Access-Token", "New-Refresh-Token", "New-Access-Token-Expires-In")
REFRESH_TOKEN_HEADER = "Refresh-Token"
_STATE_KEY = "notes_auth.new_tokens"
_UNQUOTABLE = re.compile(r'[^\x20-\x7e]|["\\]')


def _quote(value: str) -> str:
    # RFC 6750 §3: error_description is %x20-21 / %x23-5B / %x5D-7E; keep it inside that set.
    return '"' + _UNQUOTABLE.sub("", value)[:200] + '"'


def _raw_header(request: Request, name: bytes) -> str | None:
    """One header straight from the ASGI scope (names arrive lower-cased): on the per-request
    path this avoids building Starlette's Headers mapping for a single look-up."""
    for key, value in request.scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


class BearerChallenge(Exception):
    """An RFC 6750 §3 error: 401 (or 403 insufficient_scope) with a WWW-Authenticate challenge."""

    def __init__(
        self,
        realm: str,
        *,
        status: int = 401,
        error: str | None = None,
        description: str | None = None,
        scope: str | None = None,
    ) -> None:
        super().__init__(description or error or "authentication required")
        self.status = status
        self.error = error
        self.description = description
        parts = [f"realm={_quote(realm)}"]
        if error:
            parts.append(f"error={_quote(error)}")
        if description:
            parts.append(f"error_description={_quote(description)}")
        if scope:
            parts.append(f"scope={_quote(scope)}")
        self.header = "Bearer " + ", ".join(parts)


class BearerAuth(SecurityBase):
    """The dependency. It is also an OpenAPI security scheme (OAuth2 password flow), so Swagger
    UI's Authorize button logs in at the auth server's token URL (see `set_token_url`)."""

    def __init__(
        self,
        *,
        realm: str = "notes-api",
        token_url: str = "/token",
        scopes: dict[str, str] | None = None,
        scheme_name: str = "OAuth2",
    ) -> None:
        self.realm = realm
        self.model = OAuth2Model(
            flows=OAuthFlows(password=OAuthFlowPassword(tokenUrl=token_url, scopes=scopes or {}))
        )
        self.scheme_name = scheme_name

    def _challenge(self, **kw: Any) -> BearerChallenge:
        return BearerChallenge(self.realm, **kw)

    async def __call__(
        self, request: Request, security_scopes: SecurityScopes
    ) -> AccessTokenClaims:
        verifier: TokenVerifier = request.app.state.token_verifier
        authorization = _raw_header(request, b"authorization")
        if not authorization:
            # RFC 6750 §3.1: no credentials, no error code.
            raise self._challenge(description=None)
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or " " in token:
            raise self._challenge(
                error="invalid_token", description="malformed Authorization header"
            )
        try:
            claims = await verifier.verify(token)
        except TokenError as exc:
            refresher: TransparentRefresher | None = getattr(
                request.app.state, "token_refresher", None
            )
            refresh_token = request.headers.get(REFRESH_TOKEN_HEADER)
            if exc.reason != "expired" or refresher is None or not refresh_token:
                raise self._challenge(error="invalid_token", description=exc.description) from None
            claims = await self._refresh(request, verifier, refresher, token, refresh_token.strip())
        missing = [scope for scope in security_scopes.scopes if scope not in claims.scopes]
        if missing:
            raise self._challenge(
                status=403,
                error="insufficient_scope",
                description="the access token lacks a required scope",
                scope=" ".join(security_scopes.scopes),
            )
        return claims

    async def _refresh(
        self,
        request: Request,
        verifier: TokenVerifier,
        refresher: TransparentRefresher,
        token: str,
        refresh_token: str,
    ) -> AccessTokenClaims:
        try:
            expired = await verifier.verify_expired_ok(token)
        except TokenError as exc:
            raise self._challenge(error="invalid_token", description=exc.description) from None
        try:
            pair = await refresher.refresh(refresh_token, expired.client_id)
        except RefreshRejected:
            raise self._challenge(
                error="invalid_token",
                description="the access token expired and the refresh token was refused",
            ) from None
        except AuthServerUnavailable:
            # Nothing was done: the operation is not performed without a verified caller.
            raise ServiceUnavailable(
                "the auth server could not be reached to refresh the access token",
                headers={"Retry-After": str(getattr(request.app.state, "refresh_retry_after", 5))},
            ) from None
        try:
            claims = await verifier.verify(pair.access_token)
        except TokenError as exc:
            raise self._challenge(error="invalid_token", description=exc.description) from None
        if claims.sub != expired.sub or claims.client_id != expired.client_id:
            raise self._challenge(
                error="invalid_token", description="the refreshed token is for someone else"
            )
        request.scope.setdefault("state", {})[_STATE_KEY] = {
            "New-Access-Token": pair.access_token,
            "New-Refresh-Token": pair.refresh_token,
            "New-Access-Token-Expires-In": str(pair.expires_in),
        }
        return claims


def install_bearer_handlers(app: FastAPI) -> None:
    """Render BearerChallenge as RFC 6750 §3 (header) with a problem+json body."""

    @app.exception_handler(BearerChallenge)
    async def _bearer(request: Request, exc: BearerChallenge) -> JSONResponse:
        return problem_response(
            exc.status,
            detail=exc.description,
            headers={"WWW-Authenticate": exc.header},
            instance=request.url.path,
            **({"error": exc.error} if exc.error else {}),
        )


class _TokenHeadersMiddleware:
    """Adds the New-* headers of a transparent refresh to whatever response the route produced,
    handled error responses included, so the client keeps its new pair. (An unhandled 500 is
    rendered outside this middleware; then the auth server's reuse grace window lets the client
    present the same refresh token again and receive the same pair.)"""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})

        async def send_with_tokens(message: Message) -> None:
            if message["type"] == "http.response.start":
                tokens = state.get(_STATE_KEY)
                if tokens:
                    headers = list(message.get("headers", []))
                    headers += [(k.lower().encode(), v.encode()) for k, v in tokens.items()]
                    headers.append((b"cache-control", b"no-store"))
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_tokens)


def install_token_headers(app: FastAPI) -> None:
    app.add_middleware(_TokenHeadersMiddleware)


def set_token_url(app: FastAPI, token_url: str) -> None:
    """Point the OpenAPI OAuth2 password flow at the auth server's token endpoint."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = original()
            for scheme in schema.get("components", {}).get("securitySchemes", {}).values():
                password = scheme.get("flows", {}).get("password")
                if password is not None:
                    password["tokenUrl"] = token_url
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


__all__ = [
    "NEW_TOKEN_HEADERS",
    "REFRESH_TOKEN_HEADER",
    "BearerAuth",
    "BearerChallenge",
    "install_bearer_handlers",
    "install_token_headers",
    "set_token_url",
]
