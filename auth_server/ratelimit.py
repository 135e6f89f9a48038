"""Rate limits and attempt counters.

Two tools live here:
- `RateLimiter`: fixed-window limits (`limits` strategies) for floods: refresh and revoke per
  session and per client; memory, or Redis when configured.
- `AttemptCounter`: fixed-window counters that count an attempt *before* its password is
  checked, atomically, so that N parallel guesses check at most the limit's worth of passwords;
  a successful attempt is refunded, in the window it was counted in and nowhere else. Its store
  is Redis when configured (falling back to the database while Redis is down), else the
  database, so that every replica and the command line (`users unlock`) see the same counts.

The attempt counters' stores are our own: `limits` has no SQL storage, and none of its storages
can take a count back from one window only (its `incr` of -1 on an expired key makes a new
window that starts at -1). Keys are hashed: no store holds a username or an address in clear.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import itertools
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
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
#
# Every count lands in a window, which its store names (`Count`): a refund takes back one count
# of that window and does nothing once the window has ended. Without the name, a refund that
# comes after its window ended (a password check outlasting the window) took a count from the
# next window (the database) or started one at -1 (Redis): each let one more guess through.

# (the counter's value after the change, the name of the window the count landed in)
Count = tuple[int, str]


class CounterStore(Protocol):
    """Fixed-window counters. `db` is the caller's unit of work: a store that writes to the
    database may have to use it (SQLite has one writer at a time)."""

    async def incr(self, key: str, expiry: int, *, db: AsyncSession | None = None) -> Count:
        """Count one; a key with no live window starts one of `expiry` seconds."""
        ...

    async def undo(self, key: str, window: str, *, db: AsyncSession | None = None) -> None:
        """Take one count back, only while `window` is the key's live window."""
        ...

    async def get_expiry(self, key: str, *, db: AsyncSession | None = None) -> float: ...

    async def clear(self, key: str, *, db: AsyncSession | None = None) -> None: ...

    async def aclose(self) -> None: ...


@dataclass(slots=True)
class _MemoryCounter:
    count: int
    window: str
    end: float


# Counters a memory store holds before it drops those whose window has ended.
MAX_MEMORY_COUNTERS = 100_000


class MemoryCounterStore:
    """Counters in this process's memory: for one process that shares its counts with nobody
    (tests, a single-process deployment's tools)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._counters: dict[str, _MemoryCounter] = {}
        self._windows = itertools.count(1)

    def _live(self, key: str) -> _MemoryCounter | None:
        counter = self._counters.get(key)
        return counter if counter is not None and counter.end > self._clock() else None

    async def incr(self, key: str, expiry: int, *, db: AsyncSession | None = None) -> Count:
        counter = self._live(key)
        if counter is None:
            if len(self._counters) >= MAX_MEMORY_COUNTERS:
                now = self._clock()
                self._counters = {k: c for k, c in self._counters.items() if c.end > now}
            counter = _MemoryCounter(0, f"m:{next(self._windows)}", self._clock() + expiry)
            self._counters[key] = counter
        counter.count += 1
        return counter.count, counter.window

    async def undo(self, key: str, window: str, *, db: AsyncSession | None = None) -> None:
        counter = self._live(key)
        if counter is not None and counter.window == window and counter.count > 0:
            counter.count -= 1

    async def get_expiry(self, key: str, *, db: AsyncSession | None = None) -> float:
        counter = self._live(key)
        return counter.end if counter is not None else self._clock()

    async def clear(self, key: str, *, db: AsyncSession | None = None) -> None:
        self._counters.pop(key, None)

    async def aclose(self) -> None:
        self._counters.clear()


# Redis: each counter is a hash {n: count, w: its window's name} that expires with its window.
# KEYS[1]: the counter; ARGV[1]: the window in ms; ARGV[2]: the name of a window it may start.
_REDIS_INCR = """
local window = redis.call("hget", KEYS[1], "w")
if not window then
    redis.call("hset", KEYS[1], "n", 1, "w", ARGV[2])
    redis.call("pexpire", KEYS[1], ARGV[1])
    return {1, ARGV[2]}
end
return {redis.call("hincrby", KEYS[1], "n", 1), window}
"""
# KEYS[1]: the counter; ARGV[1]: the window the count was made in. An ended window is gone.
_REDIS_UNDO = """
if redis.call("hget", KEYS[1], "w") == ARGV[1] and tonumber(redis.call("hget", KEYS[1], "n")) > 0 then
    redis.call("hincrby", KEYS[1], "n", -1)
end
return 0
"""


class RedisCounterStore:
    """Counters in Redis, one round trip per change (a script: Redis runs it atomically). The
    keys live under `{AUTH_REDIS_PREFIX}:attempts:`, apart from the flood limits' keys."""

    def __init__(self, redis: Any, prefix: str) -> None:
        self._redis = redis
        self._prefix = f"{prefix}:attempts:"
        self._incr = redis.register_script(_REDIS_INCR)
        self._undo = redis.register_script(_REDIS_UNDO)

    async def incr(self, key: str, expiry: int, *, db: AsyncSession | None = None) -> Count:
        new_window = "r:" + secrets.token_hex(8)
        count, window = await self._incr(
            keys=[self._prefix + key], args=[expiry * 1000, new_window]
        )
        return int(count), window.decode() if isinstance(window, bytes) else str(window)

    async def undo(self, key: str, window: str, *, db: AsyncSession | None = None) -> None:
        if window.startswith("r:"):
            await self._undo(keys=[self._prefix + key], args=[window])

    async def get_expiry(self, key: str, *, db: AsyncSession | None = None) -> float:
        ttl_ms = int(await self._redis.pttl(self._prefix + key))
        return time.time() + max(ttl_ms, 0) / 1000

    async def clear(self, key: str, *, db: AsyncSession | None = None) -> None:
        await self._redis.delete(self._prefix + key)

    async def aclose(self) -> None:
        pass  # the client belongs to whoever opened it


class SqlCounterStore:
    """Fixed-window counters in the `rate_limits` table: one atomic statement per change (an
    upsert on SQLite 3.35+ and PostgreSQL). A window is named by its end, as stored.

    On PostgreSQL each change is a short transaction of its own, on a small pool of its own: in
    the request's transaction the counter's row lock would be held through the password check,
    and every login from one address would queue behind the one before; and from the requests'
    pool, requests holding their connections could wait forever for one to count with. On
    SQLite, whose single writer serializes every transaction anyway, the change is made in the
    request's own transaction (a second one would wait for the request's write lock), and a
    deliberate answer (a failed login) commits it."""

    _UPSERT = text(
        "INSERT INTO rate_limits (key, count, window_end) VALUES (:key, 1, :end) "
        "ON CONFLICT (key) DO UPDATE SET "
        "count = CASE WHEN rate_limits.window_end <= :now THEN 1 "
        "ELSE rate_limits.count + 1 END, "
        "window_end = CASE WHEN rate_limits.window_end <= :now THEN :end "
        "ELSE rate_limits.window_end END "
        "RETURNING count, window_end"
    )
    _UNDO = text(
        "UPDATE rate_limits SET count = count - 1 "
        "WHERE key = :key AND window_end = :end AND window_end > :now AND count > 0"
    )

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        owns_engine: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._engine = engine
        self._owns_engine = owns_engine
        self._in_request = engine.dialect.name == "sqlite"
        self._clock = clock

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

    async def incr(self, key: str, expiry: int, *, db: AsyncSession | None = None) -> Count:
        now = self._clock()
        params = {"key": key, "now": now, "end": now + expiry}
        async with self._connection(db) as conn:
            count, end = (await conn.execute(self._UPSERT, params)).one()
        # repr() of a float reads back as the same float: the name compares equal to the column.
        return int(count), f"s:{float(end)!r}"

    async def undo(self, key: str, window: str, *, db: AsyncSession | None = None) -> None:
        if not window.startswith("s:"):
            return  # counted by another store (Redis, before it went down)
        params = {"key": key, "end": float(window[2:]), "now": self._clock()}
        async with self._connection(db) as conn:
            await conn.execute(self._UNDO, params)

    async def get_expiry(self, key: str, *, db: AsyncSession | None = None) -> float:
        async with self._connection(db) as conn:
            end = await conn.scalar(
                text("SELECT window_end FROM rate_limits WHERE key = :key"), {"key": key}
            )
        return float(end) if end is not None else self._clock()

    async def clear(self, key: str, *, db: AsyncSession | None = None) -> None:
        async with self._connection(db) as conn:
            await conn.execute(delete(RateLimitCounter).where(RateLimitCounter.key == key))


class FallbackCounterStore:
    """The primary store (Redis), or the fallback while the primary can't be reached: logins
    keep working, and keep being counted, through a Redis outage. (A refund reaches the store
    its count was made in, or nothing: window names are the store's own.)"""

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

    async def incr(self, key: str, expiry: int, *, db: AsyncSession | None = None) -> Count:
        try:
            async with self._watch():
                return await self._primary.incr(key, expiry, db=db)
        except Exception as exc:
            return await self._fall_back(exc).incr(key, expiry, db=db)

    async def undo(self, key: str, window: str, *, db: AsyncSession | None = None) -> None:
        try:
            async with self._watch():
                await self._primary.undo(key, window, db=db)
        except Exception as exc:
            await self._fall_back(exc).undo(key, window, db=db)
            return
        await self._fallback.undo(key, window, db=db)  # a count made while Redis was down

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
    settings: AuthSettings, engine: AsyncEngine, redis: Any | None
) -> CounterStore:
    """Redis (falling back to the database while it is down) when configured, else the
    database: every replica, and the command line, see the same counts. `redis`: the
    redis.asyncio client of AUTH_REDIS_URL."""
    database = SqlCounterStore.for_database(settings.database_url, engine)
    if redis is not None:
        return FallbackCounterStore(RedisCounterStore(redis, settings.redis_prefix), database)
    return database


@dataclass(frozen=True, slots=True)
class Ticket:
    """One count, in the window it landed in: what a refund gives back."""

    key: str
    window: str


@dataclass(frozen=True, slots=True)
class Attempt:
    allowed: bool
    wait: int  # seconds until the window ends (when not allowed)
    refused_so_far: int  # attempts refused in this window, this one included (0 if allowed)
    ticket: Ticket | None = None  # the count held (when allowed)


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
        """Count an attempt. Over the limit, it is taken back at once (it tries nothing) and
        the refusal is counted instead (`refuse`), so that repeated refusals can be reported in
        aggregate; without `record_refusal`, the caller decides whether to `refuse`."""
        async with _storage_errors():
            count, counted_in = await self.store.incr(key, window, db=db)
            if count <= limit:
                return Attempt(True, 0, 0, Ticket(key, counted_in))
            await self.store.undo(key, counted_in, db=db)
        if not record_refusal:
            return Attempt(False, 0, 0)
        return await self.refuse(key, window, db=db)

    async def refuse(self, key: str, window: int, *, db: AsyncSession | None = None) -> Attempt:
        """Count a refusal under `key`, and say how long until its window ends."""
        async with _storage_errors():
            refused, _ = await self.store.incr(key + ":refused", window, db=db)
            ends = await self.store.get_expiry(key, db=db)
        return Attempt(False, _wait(ends, time.time()), refused)

    async def refund(self, ticket: Ticket, *, db: AsyncSession | None = None) -> None:
        """Take back a count that turned out not to be a failure (a correct password), in its
        own window: once that has ended, the count is gone with it and nothing changes."""
        async with _storage_errors():
            await self.store.undo(ticket.key, ticket.window, db=db)

    async def clear(self, key: str, *, db: AsyncSession | None = None) -> None:
        async with _storage_errors():
            await self.store.clear(key, db=db)
            await self.store.clear(key + ":refused", db=db)

    async def aclose(self) -> None:
        await self.store.aclose()


__all__ = [
    "Attempt",
    "AttemptCounter",
    "Count",
    "CounterStore",
    "FallbackCounterStore",
    "LimiterUnavailable",
    "MemoryCounterStore",
    "RateLimiter",
    "RedisCounterStore",
    "SqlCounterStore",
    "Ticket",
    "address_key",
    "limit_key",
    "limits_key_prefix",
    "open_counter_store",
    "open_storage",
]
