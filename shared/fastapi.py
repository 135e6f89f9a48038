"""FastAPI glue: protect routes with bearer access tokens (RFC 6750), with transparent refresh.

    keys = RemoteKeySet("https://auth.example.com")
    verifier = TokenVerifier(issuer="https://auth.example.com", audience="my-api", key_source=keys)
    bearer = BearerAuth(verifier, realm="my-api")

    app = FastAPI(lifespan=...)          # start `keys` in the lifespan
    install_bearer_handlers(app)         # 401/403 challenges and 503, never a 500

    @app.get("/things")
    async def things(claims: Annotated[AccessTokenClaims, Security(bearer, scopes=["x"])]): ...

`BearerAuth` takes the verifier itself, or, when the verifier is built inside the app's lifespan,
a function of the request that returns it. This is the only module of the library that imports
FastAPI.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from http import HTTPStatus
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
from shared.forwarding import Network, client_address
from shared.refresh import AuthServerUnavailable, Refresher, RefreshRejected
from shared.verification import TokenVerifier

PROBLEM_JSON = "application/problem+json"
NEW_TOKEN_HEADERS = ("New-Access-Token", "New-Refresh-Token", "New-Access-Token-Expires-In")
REFRESH_TOKEN_HEADER = "Refresh-Token"
_STATE_KEY = "notes_auth.new_tokens"
REFRESH_REFUSED = "the access token expired and the refresh token was refused"
_UNQUOTABLE = re.compile(r'[^\x20-\x7e]|["\\]')

# The verifier (or refresher) itself, or a function of the request that returns it.
VerifierSource = TokenVerifier | Callable[[Request], TokenVerifier]
RefresherSource = Refresher | Callable[[Request], Refresher | None] | None
# Proxies whose X-Forwarded-For is believed when passing the caller's address on to a refresh.
ProxiesSource = Sequence[Network] | Callable[[Request], Sequence[Network]]


def problem_response(
    status: int,
    *,
    title: str | None = None,
    detail: str | None = None,
    type_: str = "about:blank",
    headers: dict[str, str] | None = None,
    instance: str | None = None,
    **extra: Any,
) -> JSONResponse:
    """An RFC 9457 `application/problem+json` response."""
    body: dict[str, Any] = {
        "type": type_,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


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


class RefreshUnavailable(Exception):
    """A transparent refresh could not reach the auth server: 503 with Retry-After, and the
    operation was not performed."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("the auth server could not be reached to refresh the access token")
        self.retry_after = retry_after


class BearerAuth(SecurityBase):
    """The dependency. It is also an OpenAPI security scheme (OAuth2 password flow), so Swagger
    UI's Authorize button logs in at the auth server's token URL (see `set_token_url`).

    With a `refresher`, a request carrying an expired (otherwise valid) access token and a
    `Refresh-Token` header is refreshed on the caller's behalf: the new pair comes back in the
    `New-*` response headers (`install_bearer_handlers` adds them)."""

    def __init__(
        self,
        verifier: VerifierSource,
        *,
        realm: str = "api",
        refresher: RefresherSource = None,
        trusted_proxies: ProxiesSource = (),
        token_url: str = "/token",
        scopes: dict[str, str] | None = None,
        scheme_name: str = "OAuth2",
    ) -> None:
        self.realm = realm
        self._verifier = verifier
        self._refresher = refresher
        self._trusted = trusted_proxies
        self.model = OAuth2Model(
            flows=OAuthFlows(password=OAuthFlowPassword(tokenUrl=token_url, scopes=scopes or {}))
        )
        self.scheme_name = scheme_name

    def challenge(self, **kw: Any) -> BearerChallenge:
        return BearerChallenge(self.realm, **kw)

    def _verifier_for(self, request: Request) -> TokenVerifier:
        source = self._verifier
        return source if isinstance(source, TokenVerifier) else source(request)

    def _trusted_for(self, request: Request) -> Sequence[Network]:
        source = self._trusted
        return source(request) if callable(source) else source

    def _refresher_for(self, request: Request) -> Refresher | None:
        source = self._refresher
        if source is None or hasattr(source, "refresh"):
            return source  # type: ignore[return-value]
        return source(request)

    async def __call__(
        self, request: Request, security_scopes: SecurityScopes
    ) -> AccessTokenClaims:
        return await self.authenticate(request, security_scopes.scopes)

    def security(self, scopes: Sequence[str] = ()) -> dict[str, Any]:
        """The OpenAPI security requirement of a route that calls `authenticate` itself (pass
        it as the route's `openapi_extra`), so that it is documented like a `Security` one."""
        return {"security": [{self.scheme_name: list(scopes)}]}

    async def authenticate(self, request: Request, scopes: Sequence[str] = ()) -> AccessTokenClaims:
        """What the dependency does, for a route that takes `request: Request` and calls it
        itself: the verified claims, or a BearerChallenge (401, or 403 when a scope in `scopes`
        is missing) that `install_bearer_handlers` renders.

        The same rules and the same answers as `Security(bearer, scopes=...)`, without FastAPI's
        dependency solving, which costs about as much as the whole verification of a cached
        token (`make bench`, docs/benchmarks.md): for hot routes. Document the route with
        `openapi_extra=bearer.security(scopes)`."""
        verifier = self._verifier_for(request)
        authorization = _raw_header(request, b"authorization")
        if not authorization:
            # RFC 6750 §3.1: no credentials, no error code.
            raise self.challenge(description=None)
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or " " in token:
            raise self.challenge(
                error="invalid_token", description="malformed Authorization header"
            )
        try:
            claims = await verifier.verify(token)
        except TokenError as exc:
            refresh_token = _raw_header(request, b"refresh-token")
            refresher = self._refresher_for(request) if refresh_token else None
            if exc.reason != "expired" or refresher is None or not refresh_token:
                raise self.challenge(error="invalid_token", description=exc.description) from None
            claims = await self._refresh(request, verifier, refresher, token, refresh_token.strip())
        missing = [scope for scope in scopes if scope not in claims.scopes]
        if missing:
            raise self.challenge(
                status=403,
                error="insufficient_scope",
                description="the access token lacks a required scope",
                scope=" ".join(scopes),
            )
        return claims

    async def _refresh(
        self,
        request: Request,
        verifier: TokenVerifier,
        refresher: Refresher,
        token: str,
        refresh_token: str,
    ) -> AccessTokenClaims:
        try:
            expired = await verifier.verify_expired_ok(token)
        except TokenError as exc:
            raise self.challenge(error="invalid_token", description=exc.description) from None
        # One answer for every refused refresh, so that it never tells whether a refresh token
        # is good. A token without a session (client credentials) has nothing to refresh.
        refused = self.challenge(error="invalid_token", description=REFRESH_REFUSED)
        if expired.sid is None:
            raise refused
        peer = request.client.host if request.client else None
        try:
            pair = await refresher.refresh(
                refresh_token,
                expired.client_id,
                # The auth server refuses a refresh token of another session without spending
                # it: somebody else's expired token can't burn a victim's refresh token.
                session_id=expired.sid,
                client_ip=client_address(
                    peer, _raw_header(request, b"x-forwarded-for"), self._trusted_for(request)
                ),
                user_agent=_raw_header(request, b"user-agent"),
            )
        except RefreshRejected:
            raise refused from None
        except AuthServerUnavailable:
            # Nothing was done: the operation is not performed without a verified caller.
            raise RefreshUnavailable(refresher.retry_after) from None
        try:
            claims = await verifier.verify(pair.access_token)
        except TokenError:
            raise refused from None
        if (claims.sub, claims.client_id, claims.sid) != (
            expired.sub,
            expired.client_id,
            expired.sid,
        ):
            raise refused
        request.scope.setdefault("state", {})[_STATE_KEY] = {
            "New-Access-Token": pair.access_token,
            "New-Refresh-Token": pair.refresh_token,
            "New-Access-Token-Expires-In": str(pair.expires_in),
        }
        return claims


def refreshed_token_headers(scope: Scope) -> list[tuple[bytes, bytes]]:
    """The response headers a transparent refresh adds to its request's response: the `New-*`
    pair and `Cache-Control: no-store`; none for any other request. For an application that
    adds headers in a middleware of its own (`install_bearer_handlers(app, headers_middleware=
    False)`)."""
    tokens = scope.get("state", {}).get(_STATE_KEY)
    if not tokens:
        return []
    pairs = [(name.lower().encode(), value.encode()) for name, value in tokens.items()]
    pairs.append((b"cache-control", b"no-store"))
    return pairs


class TokenHeadersMiddleware:
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

        async def send_with_tokens(message: Message) -> None:
            if message["type"] == "http.response.start":
                added = refreshed_token_headers(scope)
                if added:
                    message = {**message, "headers": [*message.get("headers", ()), *added]}
            await send(message)

        await self.app(scope, receive, send_with_tokens)


def install_bearer_handlers(
    app: FastAPI, *, transparent_refresh: bool = True, headers_middleware: bool = True
) -> None:
    """The one call that makes `BearerAuth` answer like RFC 6750 §3: a BearerChallenge becomes
    401/403 with `WWW-Authenticate` (and a problem+json body), an unreachable auth server during
    a transparent refresh becomes 503 with `Retry-After`. With `transparent_refresh`, the new
    token pair is added to every response of a refreshed request: by `TokenHeadersMiddleware`,
    or, with `headers_middleware=False`, by the application's own middleware calling
    `refreshed_token_headers(scope)` (one layer fewer per request)."""

    async def challenge(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, BearerChallenge)
        return problem_response(
            exc.status,
            detail=exc.description,
            headers={"WWW-Authenticate": exc.header},
            instance=request.url.path,
            **({"error": exc.error} if exc.error else {}),
        )

    async def unavailable(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RefreshUnavailable)
        return problem_response(
            503,
            detail=str(exc),
            headers={"Retry-After": str(exc.retry_after)},
            instance=request.url.path,
        )

    app.add_exception_handler(BearerChallenge, challenge)
    app.add_exception_handler(RefreshUnavailable, unavailable)
    if transparent_refresh and headers_middleware:
        app.add_middleware(TokenHeadersMiddleware)


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
    "PROBLEM_JSON",
    "REFRESH_TOKEN_HEADER",
    "BearerAuth",
    "BearerChallenge",
    "RefreshUnavailable",
    "TokenHeadersMiddleware",
    "install_bearer_handlers",
    "problem_response",
    "refreshed_token_headers",
    "set_token_url",
]
