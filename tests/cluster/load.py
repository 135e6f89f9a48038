"""A steady background load through the proxy: logins, refreshes, note writes and reads.

Each virtual user is one client: its own account, its own address (sent as X-Forwarded-For, which
the auth replicas believe from the proxy) and User-Agent, one session whose refresh token it
rotates. It behaves as a well-written client does: a request that fails with a transport error or
a 5xx is retried (after 0.2 to 0.5 s, whatever the Retry-After says, to keep the test short) until
it succeeds or 30 s have passed. Every attempt is recorded, so a fault window can be judged
attempt by attempt: what was sent, what failed and how, what was retried, what never succeeded.

What the servers acknowledged (a 201 for a note, a 200 with a `sid` for a login, a 201 for a user)
is kept, so the test can later check that none of it was lost.

After each acknowledgement the client looks in the database: an answer whose write isn't there
yet came before its commit (`early`; the services once committed after answering), and one
whose write never appears was acknowledged and then lost (`never_committed`). A client given a
user, a session or a rotated refresh token waits for it before using it, so that a regression
there shows in those two counts, not as noise in the fault windows.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import random
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

PASSWORD = "cluster load passphrase 12 words"
OK = {"login": 200, "refresh": 200, "note_create": 201, "note_list": 200, "me": 200, "signup": 201}
RETRYABLE = {500, 502, 503, 504}
WEIGHTS = {"login": 1, "refresh": 3, "note_create": 4, "note_list": 1, "me": 1}
RETRY_FOR = 30.0
REQUEST_TIMEOUT = 20.0


@dataclass(frozen=True)
class Attempt:
    op: str
    vu: int
    start: float
    end: float
    status: int | None  # None: no HTTP answer (transport error or timeout)
    error: str | None
    retry_after: str | None
    number: int  # 1 for the first try of an operation
    detail: str | None = None  # the start of the body of a failed answer

    @property
    def ok(self) -> bool:
        return self.status == OK[self.op]

    @property
    def outcome(self) -> str:
        return str(self.status) if self.status is not None else (self.error or "error")


@dataclass(frozen=True)
class Operation:
    op: str
    vu: int
    start: float
    end: float
    attempts: int
    ok: bool
    outcome: str


@dataclass(frozen=True)
class AckedNote:
    id: str
    owner: str
    title: str
    body: str
    at: float


@dataclass(frozen=True)
class AckedSession:
    sid: str
    sub: str
    at: float


def claims_of(token: str) -> dict[str, Any]:
    """The payload of a JWT, unverified (the test only reads sid/sub/kid it was just given)."""
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def header_of(token: str) -> dict[str, Any]:
    head = token.split(".")[0]
    return dict(json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4))))


@dataclass
class Report:
    """What the clients saw during one window."""

    name: str
    start: float
    end: float
    restored: float | None
    sent: int
    failed: int
    failures: dict[str, int]
    operations: int
    retried: int
    failed_operations: int
    first_failure: float | None
    last_failure: float | None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def recovery(self) -> float | None:
        """Seconds from the fault's end (`restored`) until the last failed attempt ended."""
        if self.restored is None:
            return None
        if self.last_failure is None:
            return 0.0
        return max(0.0, self.last_failure - self.restored)

    def line(self) -> str:
        failures = ", ".join(f"{k}: {v}" for k, v in sorted(self.failures.items())) or "none"
        text = (
            f"{self.name}: {self.sent} requests sent in {self.end - self.start:.1f} s, "
            f"{self.failed} failed ({failures}), {self.retried} operations retried, "
            f"{self.failed_operations} never succeeded"
        )
        if self.restored is not None and self.first_failure is not None and self.last_failure:
            text += f"; clients saw errors for {self.last_failure - self.first_failure:.1f} s"
        if self.recovery is not None:
            text += f", all answers good again {self.recovery:.1f} s after the fault ended"
        return text


class VirtualUser:
    def __init__(self, load: Load, n: int) -> None:
        self.load = load
        self.n = n
        self.username = f"load{n}-{secrets.token_hex(3)}"
        self.headers = {
            "X-Forwarded-For": f"10.77.{n // 250}.{n % 250 + 1}",
            "User-Agent": f"cluster-load/{n}",
        }
        self.access: str | None = None
        self.refresh: str | None = None
        self.sub: str | None = None
        self.counter = 0
        self.rng = random.Random(n)

    async def request(self, op: str) -> httpx.Response | None:
        """One operation with the client's retries. Returns the successful response or None."""
        http = self.load.http
        base = self.load.base_url
        number = 0
        first = time.monotonic()
        body: dict[str, Any] | None = None
        if op == "note_create":
            self.counter += 1
            body = {
                "title": f"vu{self.n} note {self.counter}",
                "body": secrets.token_hex(16),
            }
        outcome = "error"
        while True:
            number += 1
            start = time.monotonic()
            status: int | None = None
            error: str | None = None
            retry_after: str | None = None
            response: httpx.Response | None = None
            try:
                response = await self._send(http, base, op, body)
                status = response.status_code
                retry_after = response.headers.get("retry-after")
            except httpx.HTTPError as exc:
                error = type(exc).__name__
            attempt = Attempt(
                op, self.n, start, time.monotonic(), status, error, retry_after, number
            )
            self.load.attempts.append(attempt)
            outcome = attempt.outcome
            if attempt.ok:
                assert response is not None
                await self._acknowledge(op, response, body)
                self.load.operations.append(
                    Operation(op, self.n, first, attempt.end, number, True, outcome)
                )
                return response
            retry = status is None or status in RETRYABLE
            if not retry or time.monotonic() - first > RETRY_FOR:
                break
            await asyncio.sleep(min(0.5, 0.2 * number))
        self.load.operations.append(
            Operation(op, self.n, first, time.monotonic(), number, False, outcome)
        )
        return None

    async def _send(
        self, http: httpx.AsyncClient, base: str, op: str, body: dict[str, Any] | None
    ) -> httpx.Response:
        headers = dict(self.headers)
        if op == "signup":
            return await http.post(
                f"{base}/auth/users",
                json={
                    "username": self.username,
                    "email": f"{self.username}@example.com",
                    "password": PASSWORD,
                },
                headers=headers,
            )
        if op == "login":
            return await http.post(
                f"{base}/auth/token",
                data={
                    "grant_type": "password",
                    "client_id": "web",
                    "username": self.username,
                    "password": PASSWORD,
                },
                headers=headers,
            )
        if op == "refresh":
            assert self.refresh is not None
            return await http.post(
                f"{base}/auth/token",
                data={
                    "grant_type": "refresh_token",
                    "client_id": "web",
                    "refresh_token": self.refresh,
                },
                headers=headers,
            )
        headers["Authorization"] = f"Bearer {self.access}"
        if op == "note_create":
            return await http.post(f"{base}/notes", json=body, headers=headers)
        if op == "note_list":
            return await http.get(f"{base}/notes", params={"limit": 5}, headers=headers)
        if op == "me":
            return await http.get(f"{base}/me", headers=headers)
        raise ValueError(op)

    async def _acknowledge(
        self, op: str, response: httpx.Response, body: dict[str, Any] | None
    ) -> None:
        now = time.monotonic()
        if op in ("login", "refresh"):
            tokens = response.json()
            claims = claims_of(tokens["access_token"])
            if op == "login":
                self.load.sessions.append(AckedSession(claims["sid"], claims["sub"], now))
            # The pair is only usable once its rotation (or login) has committed.
            await self.load.committed(
                op,
                "auth",
                "SELECT 1 FROM refresh_tokens WHERE token_hash = $1",
                hashlib.sha256(tokens["refresh_token"].encode()).hexdigest(),
            )
            self.access = tokens["access_token"]
            self.refresh = tokens["refresh_token"]
            self.sub = claims["sub"]
        elif op == "note_create":
            assert body is not None and self.sub is not None
            note = response.json()
            self.load.notes.append(
                AckedNote(note["id"], self.sub, body["title"], body["body"], now)
            )
            await self.load.committed(
                op, "resource", "SELECT 1 FROM notes WHERE id = $1", note["id"], wait=False
            )
        elif op == "signup":
            sub = str(response.json().get("id", ""))
            self.load.users.append((self.username, sub))
            await self.load.committed(op, "auth", "SELECT 1 FROM users WHERE id = $1", sub)

    async def setup(self) -> None:
        for op in ("signup", "login"):
            if await self.request(op) is None:
                tried = [
                    (a.outcome, a.detail)
                    for a in self.load.attempts
                    if a.vu == self.n and a.op == op
                ]
                raise RuntimeError(f"{self.username}: {op} failed: {tried}")

    async def run(self) -> None:
        ops = list(WEIGHTS)
        weights = list(WEIGHTS.values())
        while not self.load.stopping.is_set():
            op = self.rng.choices(ops, weights)[0]
            ok = await self.request(op) is not None
            if not ok and op in ("refresh", "note_create", "note_list", "me"):
                # A lost session or a refused token: start again with a password login, as the
                # page does (the failure is already recorded).
                await self.request("login")
            await asyncio.sleep(self.rng.uniform(*self.load.think))


class Load:
    def __init__(
        self,
        base_url: str,
        *,
        dsns: dict[str, str],
        users: int = 6,
        think: tuple[float, float] = (0.03, 0.08),
    ) -> None:
        self.base_url = base_url
        self.dsns = dsns  # "auth" / "resource": where `committed` looks
        self.early: Counter[str] = Counter()  # answers that came before their commit, by op
        self.never_committed: list[tuple[str, Any]] = []  # acknowledged, then never in the db
        self._pools: dict[str, Any] = {}
        self.user_count = users
        self.think = think
        self.attempts: list[Attempt] = []
        self.operations: list[Operation] = []
        self.notes: list[AckedNote] = []
        self.sessions: list[AckedSession] = []
        self.users: list[tuple[str, str]] = []  # (username, sub) of acknowledged sign-ups
        self.stopping = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self.http: httpx.AsyncClient
        self.vus: list[VirtualUser] = []

    def start(self, timeout: float = 60) -> None:
        self._thread = threading.Thread(target=self._run, name="cluster-load", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the load did not start")
        if self._error is not None:
            raise RuntimeError(f"the load could not start: {self._error!r}")

    def stop(self, timeout: float = 60) -> None:
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    async def committed(
        self, op: str, database: str, sql: str, key: Any, *, wait: bool = True
    ) -> None:
        """Whether the database already has what a 200/201 acknowledged; with `wait`, poll
        until it has (up to 30 s, through outages), else record it as never committed."""
        deadline = time.monotonic() + 30
        first = True
        while True:
            try:
                found = await self._pools[database].fetchval(sql, key, timeout=5)
            except Exception:
                await asyncio.sleep(0.1)  # the database is away: look again (it says nothing)
                if time.monotonic() < deadline:
                    continue
                found = None
            if found:
                return
            if first:
                self.early[op] += 1
                first = False
            if not wait:
                return
            if time.monotonic() > deadline:
                self.never_committed.append((op, key))
                return
            await asyncio.sleep(0.02)

    async def _main(self) -> None:
        import asyncpg

        for name, dsn in self.dsns.items():
            self._pools[name] = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
        try:
            await self._run_users()
        finally:
            for pool in self._pools.values():
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(pool.close(), 5)

    async def _run_users(self) -> None:
        # A connection per request: the rolling restart drains a replica by reloading nginx, and
        # a reload closes idle client connections, which a keep-alive client can be caught
        # sending on (it would retry; that race is nginx's, not the replicas' under test).
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT, limits=limits) as http:
            self.http = http
            self.vus = [VirtualUser(self, n) for n in range(self.user_count)]
            await asyncio.gather(*(vu.setup() for vu in self.vus))
            self._ready.set()
            tasks = [asyncio.create_task(vu.run()) for vu in self.vus]
            try:
                await asyncio.gather(*tasks)
            finally:
                for task in tasks:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task

    # -- judging ---------------------------------------------------------------------------

    def attempts_between(self, start: float, end: float) -> list[Attempt]:
        return [a for a in list(self.attempts) if start <= a.start <= end]

    def report(self, name: str, start: float, end: float, restored: float | None = None) -> Report:
        attempts = self.attempts_between(start, end)
        failed = [a for a in attempts if not a.ok]
        operations = [o for o in list(self.operations) if o.start <= end and o.end >= start]
        return Report(
            name=name,
            start=start,
            end=end,
            restored=restored,
            sent=len(attempts),
            failed=len(failed),
            failures=dict(Counter(f"{a.op} {a.outcome}" for a in failed)),
            operations=len(operations),
            retried=sum(1 for o in operations if o.attempts > 1),
            failed_operations=sum(1 for o in operations if not o.ok),
            first_failure=min((a.start for a in failed), default=None),
            last_failure=max((a.end for a in failed), default=None),
        )

    def wait_for_successes(self, ops: set[str], after: float, timeout: float) -> float | None:
        """The time by which every op in `ops` has succeeded at least once after `after`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen: dict[str, float] = {}
            for a in list(self.attempts):
                if a.start >= after and a.ok and a.op in ops:
                    seen[a.op] = min(seen.get(a.op, a.end), a.end)
            if set(seen) == ops:
                return max(seen.values())
            time.sleep(0.1)
        return None
