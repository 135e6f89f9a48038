"""RemoteKeySet: the async JWKS client behind every resource server.

Hand-written because no library does all of it (PyJWT's PyJWKClient is synchronous and has no
ETag revalidation, stale-if-error or negative caching; joserfc has no fetching at all):
- `jwks_uri` is discovered from the issuer's RFC 8414 metadata;
- the whole set is cached for the `Cache-Control: max-age` it came with (never less than a
  floor), revalidated with `ETag`, and refreshed in the background before it expires;
- concurrent fetches are merged into one (single flight);
- an unknown `kid` causes at most one refetch per `min_refresh` seconds, and unknown kids are
  negatively cached, so a flood of made-up kids can't make us hammer the auth server
  (panva/jose's cooldown);
- stale-if-error: when the auth server is down or answers garbage, the last good set stays in
  use (counted in a metric), and it is persisted to disk so a restart during an outage still
  verifies, but only for `max_staleness` seconds after the last successful fetch (a restart
  counts from that fetch, not from the restart): past it, the keys are refused (KeySetStale)
  and the set is not ready, so a stolen key can't stay usable wherever the set can't be
  refetched;
- the negative cache of unknown kids is a bounded LRU;
- fetches have a timeout, and a body larger than `max_bytes` is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from shared.denylist import write_atomically
from shared.errors import KeySetStale
from shared.keys import VerificationKey, key_from_jwk
from shared.metrics import NO_METRICS, Metrics
from shared.text import is_ascii_number

log = logging.getLogger("shared.jwks")

_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?", re.IGNORECASE)
METADATA_PATH = "/.well-known/oauth-authorization-server"


def _max_age(cache_control: str | None) -> float | None:
    if not cache_control:
        return None
    lowered = cache_control.lower()
    if "no-store" in lowered or "no-cache" in lowered:
        return 0.0
    match = _MAX_AGE.search(cache_control)
    return float(match.group(1)) if match else None


def parse_jwks(document: Any) -> dict[str, VerificationKey]:
    """Signing keys by kid; keys that aren't for signatures, or that don't parse, are skipped."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWK set")
    keys: dict[str, VerificationKey] = {}
    for jwk in document["keys"]:
        if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str):
            continue
        if jwk.get("use", "sig") != "sig" or jwk.get("kty") not in ("RSA", "EC"):
            continue
        try:
            keys[jwk["kid"]] = key_from_jwk(jwk)
        except Exception:  # one bad key must not hide the good ones
            log.warning("skipping a JWK that does not parse (kid=%r)", jwk["kid"][:64])
    return keys


class RemoteKeySet:
    """A `shared.keys.KeySource` backed by the issuer's published JWKS.

    Start it in your app's lifespan (`await keys.start()` ... `await keys.aclose()`, or
    `async with keys:`). Without an `http` client it makes, and closes, its own.
    """

    def __init__(
        self,
        issuer: str,
        *,
        http: httpx.AsyncClient | None = None,
        min_refresh: float = 10,
        cache_floor: float = 60,
        timeout: float = 5,
        max_bytes: int = 256 * 1024,
        cache_path: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
        retry_interval: float = 5,
        metrics: Metrics = NO_METRICS,
        max_staleness: float | None = None,
        wall_clock: Callable[[], float] = time.time,
        negative_cache_size: int = 10_000,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self._own_http = http is None
        self._http = http or httpx.AsyncClient(follow_redirects=False)
        self._min_refresh = min_refresh
        self._floor = cache_floor
        self._timeout = timeout
        self._max_bytes = max_bytes
        self._cache_path = cache_path
        self._clock = clock
        self._retry = retry_interval
        self._keys: dict[str, VerificationKey] = {}
        self._etag: str | None = None
        self._document: Any = None
        self._expires_at = float("-inf")
        self._last_fetch = float("-inf")
        self._max_staleness = max_staleness
        self._wall_clock = wall_clock
        self._fetched_at = float("-inf")  # wall-clock time of the last successful fetch
        # Negative cache, least recently added first: kid -> until.
        self._unknown: OrderedDict[str, float] = OrderedDict()
        self._unknown_max = negative_cache_size
        self._inflight: asyncio.Task[None] | None = None
        self._background: asyncio.Task[None] | None = None
        self._kick: asyncio.Task[None] | None = None
        self._jwks_uri: str | None = None
        self.metadata: dict[str, Any] | None = None
        self._loaded = False
        self._metrics = metrics

    # -- public --------------------------------------------------------------------------

    @property
    def stale(self) -> bool:
        """No successful fetch for longer than `max_staleness`: the keys are not trusted."""
        if self._max_staleness is None:
            return False
        return self._wall_clock() - self._fetched_at > self._max_staleness

    @property
    def ready(self) -> bool:
        return self._loaded and not self.stale

    @property
    def unknown_kids_cached(self) -> int:
        return len(self._unknown)

    async def get_key(self, kid: str) -> VerificationKey | None:
        """The key named `kid`, or None; KeySetStale when the keys are too old to trust."""
        now = self._clock()
        if now >= self._expires_at:
            if self._keys:
                # Past its lifetime but known: keep serving it while one refresh runs beside the
                # requests, so no request waits on the auth server (or on its outage timeout).
                self._refresh_in_background()
            else:
                await self._refresh_safely()
        if self.stale:
            raise KeySetStale(f"no successful JWKS fetch for over {self._max_staleness:.0f}s")
        key = self._keys.get(kid)
        if key is not None:
            return key
        if self._unknown.get(kid, float("-inf")) > now:
            return None
        # An unknown kid may be a key published after our last fetch: refetch, but at most once
        # per min_refresh, whatever the number of different kids asked for.
        if now - self._last_fetch >= self._min_refresh:
            await self._refresh_safely()
            key = self._keys.get(kid)
            if key is not None:
                return key
        self._unknown[kid] = now + self._min_refresh
        self._unknown.move_to_end(kid)
        while len(self._unknown) > self._unknown_max:
            self._unknown.popitem(last=False)
        return None

    async def start(self) -> None:
        """Load the persisted set (if any), fetch once, and keep refreshing in the background."""
        self._load_persisted()
        await self._refresh_safely()
        if self._background is None:
            self._background = asyncio.create_task(self._refresh_loop(), name="jwks-refresh")

    async def aclose(self) -> None:
        for task in (self._background, self._inflight, self._kick):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._background = None
        if self._own_http:
            await self._http.aclose()

    async def __aenter__(self) -> RemoteKeySet:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def refresh(self) -> None:
        """Fetch now (merged with any fetch already under way). Raises on failure."""
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.create_task(self._fetch())
        await asyncio.shield(self._inflight)

    # -- internals -----------------------------------------------------------------------

    def _refresh_in_background(self) -> None:
        idle = self._inflight is None or self._inflight.done()
        if idle and (self._kick is None or self._kick.done()):
            self._kick = asyncio.create_task(self._refresh_safely(), name="jwks-refresh-now")

    async def _refresh_safely(self) -> None:
        try:
            await self.refresh()
        except Exception as exc:
            self._metrics.jwks_fetched("error")
            if self._keys:
                self._metrics.jwks_stale_served()
                log.warning("JWKS fetch failed, using the last good key set: %s", exc)
            else:
                log.warning("JWKS fetch failed and no key set is known yet: %s", exc)
            # Don't retry on every request while the auth server is down.
            self._expires_at = max(self._expires_at, self._clock() + self._retry)

    async def _refresh_loop(self) -> None:
        while True:
            # Refresh a little before the cached set expires (at 80% of its life).
            delay = max(1.0, (self._expires_at - self._clock()) * 0.8)
            if not self._loaded or self.stale:
                delay = self._retry
            await asyncio.sleep(min(delay, 3600))
            await self._refresh_safely()

    async def _get_limited(self, url: str, headers: dict[str, str] | None = None) -> httpx.Response:
        request = self._http.build_request("GET", url, headers=headers, timeout=self._timeout)
        response = await self._http.send(request, stream=True)
        try:
            declared = response.headers.get("content-length")
            if (
                declared is not None
                and is_ascii_number(declared)
                and int(declared) > self._max_bytes
            ):
                raise ValueError(f"{url}: response larger than {self._max_bytes} bytes")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > self._max_bytes:
                    raise ValueError(f"{url}: response larger than {self._max_bytes} bytes")
            response._content = bytes(body)
        finally:
            await response.aclose()
        return response

    async def _discover(self) -> str:
        if self._jwks_uri is not None:
            return self._jwks_uri
        response = await self._get_limited(self.issuer + METADATA_PATH)
        response.raise_for_status()
        metadata = response.json()
        # RFC 8414 §3.3: the document's issuer must be the one we asked about.
        if not isinstance(metadata, dict) or metadata.get("issuer", "").rstrip("/") != self.issuer:
            raise ValueError("the metadata document names another issuer")
        jwks_uri = metadata.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
            raise ValueError("the metadata document has no usable jwks_uri")
        self.metadata = metadata
        self._jwks_uri = jwks_uri
        return jwks_uri

    async def _fetch(self) -> None:
        self._last_fetch = self._clock()
        uri = await self._discover()
        headers = {"If-None-Match": self._etag} if self._etag and self._keys else {}
        response = await self._get_limited(uri, headers)
        now = self._clock()
        max_age = _max_age(response.headers.get("cache-control"))
        lifetime = max(self._floor, max_age if max_age is not None else self._floor)
        if response.status_code == 304 and self._keys:
            self._metrics.jwks_fetched("not_modified")
            self._expires_at = now + lifetime
            self._fetched_at = self._wall_clock()
            self._persist()
            return
        response.raise_for_status()
        document = response.json()
        keys = parse_jwks(document)
        if not keys:
            raise ValueError("the JWK set has no usable signing key")
        self._keys = keys
        self._document = document
        self._etag = response.headers.get("etag")
        self._expires_at = now + lifetime
        self._fetched_at = self._wall_clock()
        for kid in keys:
            self._unknown.pop(kid, None)
        self._loaded = True
        self._metrics.jwks_fetched("ok")
        self._persist()

    def _persist(self) -> None:
        """Keep the last good set on disk with the time it was fetched, so that a restart during
        an outage still verifies, and still knows how old its keys are."""
        if self._cache_path is None or self._document is None:
            return
        saved = {"issuer": self.issuer, "fetched_at": self._fetched_at, "jwks": self._document}
        try:
            write_atomically(self._cache_path, json.dumps(saved))
        except OSError as exc:
            log.warning("could not persist the JWKS to %s: %s", self._cache_path, exc)

    def _load_persisted(self) -> None:
        if self._cache_path is None or not self._cache_path.exists() or self._keys:
            return
        try:
            saved = json.loads(self._cache_path.read_text())
            if saved.get("issuer") != self.issuer:
                return
            keys = parse_jwks(saved["jwks"])
            # A file without its fetch time is as old as can be: fail closed.
            fetched_at = float(saved.get("fetched_at", float("-inf")))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring the persisted JWKS at %s: %s", self._cache_path, exc)
            return
        self._keys, self._document, self._fetched_at = keys, saved["jwks"], fetched_at
        self._loaded = bool(keys)


__all__ = ["RemoteKeySet", "parse_jwks"]
