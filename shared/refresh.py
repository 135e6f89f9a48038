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


class TransparentRefresher:
    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        token_endpoint: str,
        timeout: float = 10,
        remember: float = 5.0,
    ) -> None:
        self.token_endpoint = token_endpoint
        self._http = http
        self._timeout = timeout
        self._remember = remember
        self._flights: dict[bytes, asyncio.Future[TokenPair]] = {}
        self._done: dict[bytes, tuple[float, TokenPair]] = {}

    async def refresh(self, refresh_token: str, client_id: str) -> TokenPair:
        key = hashlib.sha256(f"{client_id}\0{refresh_token}".encode()).digest()
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
                pair = await self._exchange(refresh_token, client_id)
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

    async def _exchange(self, refresh_token: str, client_id: str) -> TokenPair:
        try:
            response = await self._http.post(
                self.token_endpoint,
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": refresh_token,
                    "client_id": client_id,
                },
                headers={"Accept": "application/json"},
                timeout=self._timeout,
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


__all__ = ["AuthServerUnavailable", "RefreshRejected", "TokenPair", "TransparentRefresher"]
