"""TransparentRefresher: a resource server exchanges a refresh token on its caller's behalf.

Concurrent requests carrying the same refresh token share one exchange (single flight), and a
finished exchange is remembered for a few seconds, in memory only and keyed by the token's
hash, so that requests arriving just after it get the same pair. Across processes the auth
server's reuse grace window gives the same answer. Refresh tokens are never logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass
from typing import Protocol

import httpx


class RefreshRejected(Exception):
    """The auth server refused the refresh token (invalid_grant and friends)."""


class AuthServerUnavailable(Exception):
    """The auth server could not be reached, timed out, or failed."""


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    scope: str


class Refresher(Protocol):
    """What the FastAPI glue needs from a refresher."""

    retry_after: int  # seconds a client is told to wait when the auth server can't be reached

    async def refresh(
        self,
        refresh_token: str,
        client_id: str,
        *,
        session_id: str | None = None,
        client_ip: str | None = None,
        user_agent: str | None = None,
    ) -> TokenPair: ...


class TransparentRefresher:
    """Exchanges refresh tokens at `token_endpoint`. Without an `http` client it makes its own;
    close it with `aclose()` in your app's lifespan."""

    def __init__(
        self,
        *,
        token_endpoint: str,
        http: httpx.AsyncClient | None = None,
        timeout: float = 10,
        remember: float = 5.0,
        retry_after: int = 5,
    ) -> None:
        self.token_endpoint = token_endpoint
        # Seconds a client is told to wait (Retry-After) when the auth server can't be reached.
        self.retry_after = retry_after
        self._own_http = http is None
        self._http = http or httpx.AsyncClient(follow_redirects=False)
        self._timeout = timeout
        self._remember = remember
        self._flights: dict[bytes, asyncio.Future[TokenPair]] = {}
        self._done: dict[bytes, tuple[float, TokenPair]] = {}

    async def refresh(
        self,
        refresh_token: str,
        client_id: str,
        *,
        session_id: str | None = None,
        client_ip: str | None = None,
        user_agent: str | None = None,
    ) -> TokenPair:
        """Exchange `refresh_token` for its caller. `session_id` is the session of the caller's
        expired access token: the auth server refuses a refresh token of any other session
        without spending it. `client_ip` and `user_agent` are the caller's, passed on
        (X-Forwarded-For, User-Agent) so that the auth server sees one party however many
        resource servers relay for it. Only requests of one party share an exchange."""
        parts = (client_id, refresh_token, session_id or "", client_ip or "", user_agent or "")
        key = hashlib.sha256("\0".join(parts).encode()).digest()
        now = time.monotonic()
        self._done = {k: v for k, v in self._done.items() if v[0] > now}
        remembered = self._done.get(key)
        if remembered is not None:
            return remembered[1]
        flight = self._flights.get(key)
        if flight is None:
            flight = asyncio.get_running_loop().create_future()
            self._flights[key] = flight
            try:
                pair = await self._exchange(
                    refresh_token, client_id, session_id, client_ip, user_agent
                )
            except BaseException as exc:
                flight.set_exception(exc)
                flight.exception()  # mark retrieved: no "never retrieved" warning without waiters
                raise
            else:
                flight.set_result(pair)
                self._done[key] = (time.monotonic() + self._remember, pair)
                return pair
            finally:
                self._flights.pop(key, None)
        return await asyncio.shield(flight)

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()

    async def _exchange(
        self,
        refresh_token: str,
        client_id: str,
        session_id: str | None,
        client_ip: str | None,
        user_agent: str | None,
    ) -> TokenPair:
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        form["client_id"] = client_id
        if session_id is not None:
            form["sid"] = session_id
        headers = {"Accept": "application/json"}
        if client_ip:
            headers["X-Forwarded-For"] = client_ip
        if user_agent:
            headers["User-Agent"] = user_agent
        try:
            response = await self._http.post(
                self.token_endpoint, data=form, headers=headers, timeout=self._timeout
            )
        except httpx.HTTPError as exc:
            raise AuthServerUnavailable(type(exc).__name__) from None
        if response.status_code >= 500 or response.status_code == 429:
            raise AuthServerUnavailable(f"token endpoint answered {response.status_code}")
        if response.status_code != 200:
            raise RefreshRejected(f"token endpoint answered {response.status_code}")
        try:
            body = response.json()
            return TokenPair(
                access_token=str(body["access_token"]),
                refresh_token=str(body["refresh_token"]),
                expires_in=int(body["expires_in"]),
                scope=str(body.get("scope", "")),
            )
        except (ValueError, KeyError, TypeError):
            raise AuthServerUnavailable("token endpoint answered garbage") from None


__all__ = [
    "AuthServerUnavailable",
    "RefreshRejected",
    "Refresher",
    "TokenPair",
    "TransparentRefresher",
]
