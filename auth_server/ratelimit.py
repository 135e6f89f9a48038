"""Rate limits and attempt counters, over the `limits` library's storages (memory, Redis) and,
where several replicas share no Redis, over the database.

Two tools live here:
- `RateLimiter`: fixed-window limits (`limits` strategies) for floods: refresh and revoke per
  session and per client; memory, or Redis when configured.
- `AttemptCounter`: fixed-window counters that count an attempt *before* its password is
  checked, atomically, so that N parallel guesses check at most the limit's worth of passwords;
  a successful attempt is refunded. Its store is Redis when configured (falling back to the
  database while Redis is down), else the database, so that every replica and the command line
  (`users unlock`) see the same counts.

The database store is our own: `limits` has no SQL storage. Keys are hashed: no store holds a
username or an address in clear.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from limits import RateLimitItem
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter
from sqlalchemy import delete, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from auth_server.persistence.models import RateLimitCounter
from auth_server.redis_client import redis_client_options
from auth_server.settings import AuthSettings
from shared.service.db import create_engine

log = logging.getLogger("auth_server.ratelimit")

COUNTER_POOL_SIZE = 4


class LimiterUnavailable(Exception):
    """The shared counters can't be read or written."""


def limits_key_prefix(settings: AuthSettings) -> str:
    return f"{settings.redis_prefix}:limits"


def open_storage(settings: AuthSettings) -> Storage:
    """The `limits` storage for flood limits: Redis when configured, else memory."""
    if settings.redis_url:
        return RedisStorage(
            "async+" + settings.redis_url,
            implementation="redispy",
            wrap_exceptions=True,
            key_prefix=limits_key_prefix(settings),
            **redis_client_options(),
        )
    return MemoryStorage()


def address_key(ip: str | None) -> str:
    """What an address is counted as, by every limit: IPv6 by its /64 (a /64 is one subnet,
    RFC 4291 §2.5.1, and one host may pick any address in it), an IPv4-mapped address as the
    IPv4 one, IPv4 by itself."""
    if not ip:
        return "unknown"
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def limit_key(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


@contextlib.asynccontextmanager
async def _storage_errors() -> AsyncIterator[None]:
    try:
        yield
    except Exception as exc:
        log.warning("rate-limit storage unavailable: %s", exc)
        raise LimiterUnavailable(str(exc)) from None


# Several fixed windows counted in one Redis round trip, in order, stopping at the first one
# over its limit (what hitting them one after the other does). `limits` hits one limit per
# round trip, and the refresh grant counts two on every request (per client and address, per
# session): the second round trip cost about a tenth of its throughput (`make bench`). The
# keys and the arithmetic are those of `limits`' own fixed window (incr_expire.lua with
# FixedWindowRateLimiter.hit), so `RateLimiter.hit` and this share their counters.
# KEYS[i]: a counter; ARGV[2i-1]: its window in seconds; ARGV[2i]: its limit.
# Returns {0, 0} when every one was within its limit, else {i, ms until window i resets}.
_HIT_ALL = """
for i, key in ipairs(KEYS) do
    local current = redis.call("incrby", key, 1)
    if current == 1 then
        redis.call("expire", key, ARGV[2 * i - 1])
    end
    if current > tonumber(ARGV[2 * i]) then
        return {i, redis.call("pttl", key)}
    end
end
return {0, 0}
"""

# Counters a replica remembers as over their limit until their window ends: at most this many.
MAX_REMEMBERED_REFUSALS = 10_000


class RateLimiter:
    """Fixed-window limits, for floods: one counter per key and window, the cheapest strategy
    (this runs on every refresh and revocation).

    A counter found over its limit stays refused until its window ends (a fixed window only
    counts up), so the limiter remembers that and refuses its next requests without asking the
    storage: a flood costs this replica no round trip once it is refused."""

    def __init__(self, storage: Storage, redis: Any | None = None, key_prefix: str = "") -> None:
        """`redis`: a redis.asyncio client on the same server as a Redis `storage`, for
        `hit_all`'s one round trip; `key_prefix`: the storage's."""
        self.storage = storage
        self._strategy = FixedWindowRateLimiter(storage)
        self._hit_all = redis.register_script(_HIT_ALL) if redis is not None else None
        self._key_prefix = key_prefix
        self._refused_until: dict[str, float] = {}

    def refused(self, item: RateLimitItem, *parts: str) -> int | None:
        """The seconds to wait when this replica already saw the limit refuse `parts` in the
        current window, else None. Asks no storage."""
        return self._refused(item.key_for(limit_key(*parts)))

    def _refused(self, key: str) -> int | None:
        until = self._refused_until.get(key)
        if until is None:
            return None
        now = time.time()
        return _wait(until, now) if until > now else None

    def _remember(self, key: str, until: float) -> None:
        if len(self._refused_until) >= MAX_REMEMBERED_REFUSALS:
            now = time.time()
            self._refused_until = {k: t for k, t in self._refused_until.items() if t > now}
            if len(self._refused_until) >= MAX_REMEMBERED_REFUSALS:
                self._refused_until.clear()
        self._refused_until[key] = until

    async def hit(self, item: RateLimitItem, *parts: str) -> int | None:
        """Count one request (atomically in memory and in Redis). None if it was within the
        limit, else the seconds to wait."""
        return await self.hit_all((item, parts))

    async def hit_all(self, *limits: tuple[RateLimitItem, tuple[str, ...]]) -> int | None:
        """Count one request against each limit in turn, stopping at the first that refuses it;
        with Redis, in one round trip. None if every one had room, else the seconds to wait."""
        names = [limit_key(*parts) for _, parts in limits]
        keys = [item.key_for(name) for (item, _), name in zip(limits, names, strict=True)]
        for key in keys:
            if (wait := self._refused(key)) is not None:
                return wait
        async with _storage_errors():
            if self._hit_all is not None and len(limits) > 1:
                args: list[int] = []
                for item, _ in limits:
                    args += [item.get_expiry(), item.amount]
                index, ttl_ms = await self._hit_all(
                    keys=[f"{self._key_prefix}:{key}" for key in keys], args=args
                )
                if not index:
                    return None
                key, until = keys[int(index) - 1], time.time() + max(int(ttl_ms), 0) / 1000
            else:  # one limit, or no Redis: `limits` itself, one limit after the other
                for (item, _), name, key in zip(limits, names, keys, strict=True):
                    if not await self._strategy.hit(item, name):
                        until = await self.storage.get_expiry(key)
                        break
                else:
                    return None
        self._remember(key, until)
        return _wait(until, time.time())

    async def aclose(self) -> None:
        self._refused_until.clear()
        if isinstance(self.storage, MemoryStorage):
            await self.storage.reset()


def _wait(until: float, now: float) -> int:
    return max(1, int(until - now) + 1)


# -- attempt counters ---------------------------------------------------------------------------


class CounterStore(Protocol):
    """Fixed-window counters. `db` is the caller's unit of work: a store that writes to the
    database may have to use it (SQLite has one writer at a time)."""

    async def incr(
        self, key: str, expiry: int, amount: int = 1, *, db: AsyncSession | None = None
    ) -> int: ...

    async def get_expiry(self, key: str, *, db: AsyncSession | None = None) -> float: ...

    async def clear(self, key: str, *, db: AsyncSession | None = None) -> None: ...

    async def aclose(self) -> None: ...


class LimitsCounterStore:
    """A `limits` storage (memory or Redis) as a counter store: INCRBY with an expiry, atomic."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    async def incr(
        self, key: str, expiry: int, amount: int = 1, *, db: AsyncSession | None = None
    ) -> int:
        return await self.storage.incr(key, expiry, amount)

    async def get_expiry(self, key: str, *, db: AsyncSession | None = None) -> float:
        return await self.storage.get_expiry(key)

    async def clear(self, key: str, *, db: AsyncSession | None = None) -> None:
        await self.storage.clear(key)

    async def aclose(self) -> None:
        pass  # the storage belongs to whoever opened it


class SqlCounterStore:
    """Fixed-window counters in the `rate_limits` table: one atomic upsert per change (SQLite
    3.35+ and PostgreSQL).

    On PostgreSQL each change is a short transaction of its own, on a small pool of its own: in
    the request's transaction the counter's row lock would be held through the password check,
    and every login from one address would queue behind the one before; and from the requests'
    pool, requests holding their connections could wait forever for one to count with. On SQLite, whose single writer serializes every
    transaction anyway, the change is made in the request's own transaction (a second one would
    wait for the request's write lock), and a deliberate answer (a failed login) commits it."""

    _UPSERT = text(
        "INSERT INTO rate_limits (key, count, window_end) VALUES (:key, :first, :end) "
        "ON CONFLICT (key) DO UPDATE SET "
        "count = CASE WHEN rate_limits.window_end <= :now THEN :first "
        "ELSE rate_limits.count + :amount END, "
        "window_end = CASE WHEN rate_limits.window_end <= :now THEN :end "
        "ELSE rate_limits.window_end END "
        "RETURNING count, window_end"
    )

    def __init__(self, engine: AsyncEngine, *, owns_engine: bool = False) -> None:
        self._engine = engine
        self._owns_engine = owns_engine
        self._in_request = engine.dialect.name == "sqlite"

    @classmethod
    def for_database(cls, url: str, engine: AsyncEngine) -> SqlCounterStore:
        """On SQLite, the requests' engine (counting inside each request's transaction); else
        an engine of its own, with a small pool."""
        if engine.dialect.name == "sqlite":
            return cls(engine)
        return cls(create_engine(url, pool_size=COUNTER_POOL_SIZE), owns_engine=True)

    async def aclose(self) -> None:
        if self._owns_engine:
            await self._engine.dispose()

    @contextlib.asynccontextmanager
    async def _connection(self, db: AsyncSession | None) -> AsyncIterator[AsyncConnection]:
        if db is not None and self._in_request:
            yield await db.connection()
        else:
            async with self._engine.begin() as conn:
                yield conn

    async def incr(
        self, key: str, expiry: int, amount: int = 1, *, db: AsyncSession | None = None
    ) -> int:
        now = time.time()
        params = {
            "key": key,
            "amount": amount,
            "first": max(amount, 0),
            "now": now,
            "end": now + expiry,
        }
        async with self._connection(db) as conn:
            row = (await conn.execute(self._UPSERT, params)).one()
        return int(row[0])

    async def get_expiry(self, key: str, *, db: AsyncSession | None = None) -> float:
        async with self._connection(db) as conn:
            end = await conn.scalar(
                text("SELECT window_end FROM rate_limits WHERE key = :key"), {"key": key}
            )
        return float(end) if end is not None else time.time()

    async def clear(self, key: str, *, db: AsyncSession | None = None) -> None:
        async with self._connection(db) as conn:
            await conn.execute(delete(RateLimitCounter).where(RateLimitCounter.key == key))


class FallbackCounterStore:
    """The primary store (Redis), or the fallback while the primary can't be reached: logins
    keep working, and keep being counted, through a Redis outage."""

    def __init__(self, primary: CounterStore, fallback: CounterStore) -> None:
        self._primary = primary
        self._fallback = fallback
        self._down = False

    @contextlib.asynccontextmanager
    async def _watch(self) -> AsyncIterator[None]:
        yield
        if self._down:
            log.info("attempt counters are back on Redis")
            self._down = False

    def _fall_back(self, exc: Exception) -> CounterStore:
        if not self._down:
            log.warning("attempt counters fall back while Redis is unavailable: %s", exc)
        self._down = True
        return self._fallback

    async def incr(
        self, key: str, expiry: int, amount: int = 1, *, db: AsyncSession | None = None
    ) -> int:
        try:
            async with self._watch():
                return await self._primary.incr(key, expiry, amount, db=db)
        except Exception as exc:
            return await self._fall_back(exc).incr(key, expiry, amount, db=db)

    async def get_expiry(self, key: str, *, db: AsyncSession | None = None) -> float:
        try:
            async with self._watch():
                return await self._primary.get_expiry(key, db=db)
        except Exception as exc:
            return await self._fall_back(exc).get_expiry(key, db=db)

    async def clear(self, key: str, *, db: AsyncSession | None = None) -> None:
        try:
            async with self._watch():
                await self._primary.clear(key, db=db)
        except Exception as exc:
            await self._fall_back(exc).clear(key, db=db)
        with contextlib.suppress(Exception):  # an unlock clears both, whichever is in use
            await self._fallback.clear(key, db=db)

    async def aclose(self) -> None:
        await self._primary.aclose()
        await self._fallback.aclose()


def open_counter_store(
    settings: AuthSettings, engine: AsyncEngine, storage: Storage
) -> CounterStore:
    """Redis (falling back to the database while it is down) when configured, else the
    database: every replica, and the command line, see the same counts."""
    database = SqlCounterStore.for_database(settings.database_url, engine)
    if settings.redis_url:
        return FallbackCounterStore(LimitsCounterStore(storage), database)
    return database


@dataclass(frozen=True, slots=True)
class Attempt:
    allowed: bool
    wait: int  # seconds until the window ends (when not allowed)
    refused_so_far: int  # attempts refused in this window, this one included (0 if allowed)


class AttemptCounter:
    """Counts attempts per key in fixed windows, before the attempt is tried."""

    def __init__(self, store: CounterStore) -> None:
        self.store = store

    async def attempt(
        self,
        key: str,
        limit: int,
        window: int,
        *,
        db: AsyncSession | None = None,
        record_refusal: bool = True,
    ) -> Attempt:
        """Count an attempt. Over the limit, it is refunded at once (it tries nothing) and the
        refusal is counted instead (`refuse`), so that repeated refusals can be reported in
        aggregate; without `record_refusal`, the caller decides whether to `refuse`."""
        async with _storage_errors():
            count = await self.store.incr(key, window, db=db)
            if count <= limit:
                return Attempt(True, 0, 0)
            await self.store.incr(key, window, -1, db=db)
        if not record_refusal:
            return Attempt(False, 0, 0)
        return await self.refuse(key, window, db=db)

    async def refuse(self, key: str, window: int, *, db: AsyncSession | None = None) -> Attempt:
        """Count a refusal under `key`, and say how long until its window ends."""
        async with _storage_errors():
            refused = await self.store.incr(key + ":refused", window, db=db)
            ends = await self.store.get_expiry(key, db=db)
        return Attempt(False, _wait(ends, time.time()), refused)

    async def refund(self, key: str, window: int, *, db: AsyncSession | None = None) -> None:
        """Take back an attempt that turned out not to be a failure (a correct password)."""
        async with _storage_errors():
            await self.store.incr(key, window, -1, db=db)

    async def clear(self, key: str, *, db: AsyncSession | None = None) -> None:
        async with _storage_errors():
            await self.store.clear(key, db=db)
            await self.store.clear(key + ":refused", db=db)

    async def aclose(self) -> None:
        await self.store.aclose()


__all__ = [
    "Attempt",
    "AttemptCounter",
    "CounterStore",
    "FallbackCounterStore",
    "LimiterUnavailable",
    "LimitsCounterStore",
    "RateLimiter",
    "SqlCounterStore",
    "address_key",
    "limit_key",
    "limits_key_prefix",
    "open_counter_store",
    "open_storage",
]
