"""Issue 12: the scale-out topology keeps working while parts of it die, and nothing is lost.

Two auth replicas and two resource replicas behind nginx (round-robin), on a PostgreSQL and a
Redis of the test's own, under a steady background load of logins, refreshes and note writes
(tests/cluster/load.py). The tests run in this file's order on one cluster; each fault is made
once by a module fixture, and several tests judge what it did. The last test checks the
invariants on the databases directly.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
import socket
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from tests.cluster.load import PASSWORD, Load, Report, claims_of, header_of
from tests.cluster.topology import (
    RESOURCE_POLL_INTERVAL_WITH_REDIS,
    Cluster,
    Replica,
    exception_lines,
)
from tests.code_flow import code_flow
from tests.e2e.servers import free_port

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(240)]

LOGIN_FAILURE_LIMIT = 5  # AUTH_LOGIN_FAILURE_LIMIT's default; the cluster doesn't change it
FEED_SETTLE = 2.0  # AUTH_REVOCATION_FEED_SETTLE's default
HANG = 10.0  # seconds: an answer slower than this during a fault is a hang
REVOCATION_CHANNEL = "notes-auth:revocations"  # RESOURCE_REDIS_PREFIX's default + ":revocations"


# -- helpers ----------------------------------------------------------------------------------


def http() -> httpx.Client:
    return httpx.Client(timeout=15)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def sign_up(cluster: Cluster, username: str) -> str:
    with http() as client:
        response = client.post(
            f"{cluster.proxy_url}/auth/users",
            json={"username": username, "email": f"{username}@example.com", "password": PASSWORD},
            headers={"X-Forwarded-For": "10.66.0.1"},
        )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def password_grant(
    auth_base: str, username: str, *, password: str = PASSWORD, xff: str = "10.66.0.2"
) -> httpx.Response:
    """`auth_base` is a replica's URL or the proxy's `/auth` prefix."""
    with http() as client:
        return client.post(
            f"{auth_base}/token",
            data={
                "grant_type": "password",
                "client_id": "web",
                "username": username,
                "password": password,
            },
            headers={"X-Forwarded-For": xff, "User-Agent": "cluster-test"},
        )


def refresh_form(refresh_token: str) -> dict[str, str]:
    return {"grant_type": "refresh_token", "client_id": "web", "refresh_token": refresh_token}


def me_status(resource: Replica, token: str) -> int:
    with http() as client:
        return client.get(f"{resource.url}/me", headers=bearer(token)).status_code


def wait_until_refused(resources: list[Replica], token: str, timeout: float) -> dict[str, float]:
    """Seconds until each resource replica refuses `token` (401); missing: never within timeout."""
    start = time.monotonic()
    refused: dict[str, float] = {}
    with http() as client:
        while len(refused) < len(resources) and time.monotonic() - start < timeout:
            for resource in resources:
                if resource.name in refused:
                    continue
                status = client.get(f"{resource.url}/me", headers=bearer(token)).status_code
                if status == 401:
                    refused[resource.name] = time.monotonic() - start
            time.sleep(0.02)
    return refused


def readyz(replica: Replica) -> tuple[int | None, Any]:
    try:
        with httpx.Client(timeout=5) as client:
            response = client.get(f"{replica.url}/readyz")
        try:
            body = response.json()
        except ValueError:
            body = response.text
        return response.status_code, body
    except httpx.HTTPError as exc:
        return None, type(exc).__name__


def steady(seconds: float) -> None:
    time.sleep(seconds)


def exited_gracefully(code: int | None, log: str) -> bool:
    """uvicorn drains, runs the lifespan shutdown, then re-raises the SIGTERM it caught (so the
    exit status is 'killed by SIGTERM', as for any process that honours the signal)."""
    return code in (0, -signal.SIGTERM) and "Application shutdown complete" in log[-5000:]


# -- cross-replica consistency ----------------------------------------------------------------


def test_load_runs_clean_before_any_fault(
    cluster: Cluster, load: Load, cluster_report: list[Report]
) -> None:
    start = time.monotonic()
    steady(3)
    report = load.report("steady load, no fault", start, time.monotonic())
    cluster_report.append(report)
    assert report.sent > 50, report.line()
    assert report.failed == 0, report.line()


def test_login_on_one_auth_replica_and_refresh_on_the_other(cluster: Cluster, load: Load) -> None:
    a, b = cluster.auth
    username = "crossreplica"
    sign_up(cluster, username)
    login = password_grant(a.url, username)
    assert login.status_code == 200, login.text
    with http() as client:
        refreshed = client.post(
            f"{b.url}/token",
            data=refresh_form(login.json()["refresh_token"]),
            headers={"X-Forwarded-For": "10.66.0.2", "User-Agent": "cluster-test"},
        )
        assert refreshed.status_code == 200, refreshed.text
        token = refreshed.json()["access_token"]
        for resource in cluster.resource:
            assert client.get(f"{resource.url}/me", headers=bearer(token)).status_code == 200


def test_one_refresh_token_replayed_at_both_replicas_at_once_gets_one_pair(
    cluster: Cluster, load: Load
) -> None:
    a, b = cluster.auth
    username = "replayrace"
    sign_up(cluster, username)
    headers = {"X-Forwarded-For": "10.66.0.3", "User-Agent": "cluster-test"}

    async def race(refresh_token: str) -> tuple[httpx.Response, httpx.Response]:
        async with httpx.AsyncClient(timeout=15) as client:
            first, second = await asyncio.gather(
                client.post(f"{a.url}/token", data=refresh_form(refresh_token), headers=headers),
                client.post(f"{b.url}/token", data=refresh_form(refresh_token), headers=headers),
            )
        return first, second

    for _ in range(5):
        login = password_grant(a.url, username, xff=headers["X-Forwarded-For"])
        assert login.status_code == 200, login.text
        sid = claims_of(login.json()["access_token"])["sid"]
        first, second = asyncio.run(race(login.json()["refresh_token"]))
        assert first.status_code == second.status_code == 200, (first.text, second.text)
        # The grace window's answer is the same pair, not a second rotation.
        assert first.json()["refresh_token"] == second.json()["refresh_token"]
        assert first.json()["access_token"] == second.json()["access_token"]
        rows = cluster.postgres.query(
            "auth", "SELECT id, parent_id FROM refresh_tokens WHERE session_id = $1", sid
        )
        assert len(rows) == 2, rows  # the login's token and its one child


def test_a_write_acknowledged_by_one_replica_is_visible_at_once_at_the_other(
    cluster: Cluster, load: Load
) -> None:
    """A 201 or 200 comes after the commit: the next request, at any replica, sees the write.
    (Until the unit of work ended before the response, ~7% of these reads were 404.)"""
    a, b = cluster.auth
    ra, rb = cluster.resource
    misses: Counter[str] = Counter()
    token = None
    with http() as client:
        for i in range(40):
            username = f"ryw{i}x{secrets.token_hex(2)}"
            xff = {"X-Forwarded-For": f"10.67.0.{i + 1}"}
            created = client.post(
                f"{a.url}/users",
                json={
                    "username": username,
                    "email": f"{username}@example.com",
                    "password": PASSWORD,
                },
                headers=xff,
            )
            assert created.status_code == 201, created.text
            login = password_grant(b.url, username, xff=xff["X-Forwarded-For"])
            if login.status_code == 200:
                token = login.json()["access_token"]
            else:
                misses["login at B right after the sign-up's 201 at A"] += 1
        assert token is not None
        for _ in range(150):
            note = client.post(
                f"{ra.url}/notes", json={"title": "ryw", "body": "x"}, headers=bearer(token)
            )
            assert note.status_code == 201, note.text
            found = client.get(f"{rb.url}/notes/{note.json()['id']}", headers=bearer(token))
            if found.status_code != 200:
                misses["note read at B right after its 201 at A"] += 1
    assert misses == {}, dict(misses)


def test_the_page_keeps_its_refresh_cookie_behind_the_one_origin(
    cluster: Cluster, load: Load
) -> None:
    """The web page's client (`web-page`) gets its refresh token as a cookie scoped to the
    token path as the browser sees it, /auth/token, and refreshes with it through the proxy."""
    sign_up(cluster, "pageuser")
    headers = {"Origin": cluster.proxy_url, "X-Forwarded-For": "10.66.3.1"}
    with httpx.Client(base_url=cluster.proxy_url, timeout=15) as client:
        page = client.get("/web-config.json")
        assert page.status_code == 200
        assert page.json()["token_endpoint"] == f"{cluster.issuer}/token"
        # Contract §8.1: the page signs in with code + PKCE at the hosted sign-in.
        login = code_flow(
            client,
            cluster.issuer,
            username="pageuser",
            password=PASSWORD,
            client_id="web-page",
            redirect_uri=f"{cluster.proxy_url}/callback",
            token_headers=headers,
        )
        assert login.status_code == 200, login.text
        assert "refresh_token" not in login.json()
        assert any("path=/auth/token" in c.lower() for c in login.headers.get_list("set-cookie"))
        refreshed = client.post(
            "/auth/token",
            data={"grant_type": "refresh_token", "client_id": "web-page"},
            headers=headers,
        )
        assert refreshed.status_code == 200, refreshed.text
        assert (
            client.get("/me", headers=bearer(refreshed.json()["access_token"])).status_code == 200
        )


def test_login_failure_limits_are_shared_by_the_auth_replicas(cluster: Cluster, load: Load) -> None:
    a, b = cluster.auth
    username = "guessme"
    sign_up(cluster, username)
    xff = "10.66.0.4"
    statuses = []
    for i in range(LOGIN_FAILURE_LIMIT):
        replica = (a, b)[i % 2]
        statuses.append(password_grant(replica.url, username, password="wrong guess", xff=xff))
    assert [r.status_code for r in statuses] == [400] * LOGIN_FAILURE_LIMIT
    # Neither replica saw the limit's worth alone (3 and 2): only shared counters refuse now.
    for replica in (b, a):
        blocked = password_grant(replica.url, username, xff=xff)
        assert blocked.status_code == 429, blocked.text
        assert int(blocked.headers["Retry-After"]) > 0


def _jwks_fetches(cluster: Cluster, since_line: int) -> int:
    lines = cluster.nginx.access_lines()[since_line:]
    return sum(1 for line in lines if " /auth/.well-known/jwks.json " in line)


def test_keys_rotate_on_one_replica_is_used_by_both_without_unknown_kid_storm(
    cluster: Cluster, load: Load, cluster_report: list[Report]
) -> None:
    a, b = cluster.auth
    username = "rotation"
    sign_up(cluster, username)
    with http() as client:
        published = {
            k["kid"]
            for k in client.get(f"{cluster.proxy_url}/auth/.well-known/jwks.json").json()["keys"]
        }
    active = header_of(password_grant(a.url, username).json()["access_token"])["kid"]
    (next_kid,) = published - {active}

    access_log_mark = len(cluster.nginx.access_lines())
    start = time.monotonic()
    rotated = cluster.run("auth-server", "keys", "rotate")
    assert rotated.returncode == 0, rotated.stderr
    signed_with: dict[str, float] = {}
    tokens: dict[str, str] = {}
    while len(signed_with) < 2 and time.monotonic() - start < 15:
        for replica in (a, b):
            if replica.name in signed_with:
                continue
            token = password_grant(replica.url, username).json()["access_token"]
            if header_of(token)["kid"] == next_kid:
                signed_with[replica.name] = time.monotonic() - start
                tokens[replica.name] = token
        time.sleep(0.1)
    assert set(signed_with) == {a.name, b.name}, f"signing with the promoted key: {signed_with}"
    # Verifiers had the promoted key before any token was signed with it: no 401, at once.
    for token in tokens.values():
        for resource in cluster.resource:
            assert me_status(resource, token) == 200
    steady(3)
    end = time.monotonic()
    report = load.report("keys rotate (on one replica, by the CLI)", start, end)
    fetches = _jwks_fetches(cluster, access_log_mark)
    report.extra = {
        "seconds until each replica signed with the new key": {
            k: round(v, 2) for k, v in signed_with.items()
        },
        "JWKS fetches through the proxy during the window": fetches,
    }
    cluster_report.append(report)
    assert report.failures == {}, report.line()
    assert fetches <= 2 * len(cluster.resource), f"{fetches} JWKS fetches: an unknown-kid storm"


# -- SIGKILL of an auth replica ---------------------------------------------------------------


def _partial_login(replica: Replica, username: str) -> tuple[socket.socket, bytes]:
    """A password grant sent to `replica` up to the middle of its body: in flight until the rest
    is sent."""
    body = urlencode(
        {"grant_type": "password", "client_id": "web", "username": username, "password": PASSWORD}
    ).encode()
    conn = socket.create_connection(("127.0.0.1", replica.port), timeout=15)
    head = (
        "POST /token HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\nX-Forwarded-For: 10.66.2.1\r\n\r\n"
    ).encode()
    conn.sendall(head + body[:10])
    time.sleep(0.3)  # the server has read the headers and is waiting for the body
    return conn, body[10:]


def _read_head(conn: socket.socket) -> bytes:
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = conn.recv(65536)
        if not chunk:
            break
        answer += chunk
    return answer


def test_sigkill_of_an_auth_replica_fails_only_its_in_flight_requests(
    cluster: Cluster, load: Load, cluster_report: list[Report]
) -> None:
    victim = cluster.auth[0]
    sign_up(cluster, "inflight")
    steady(1)
    conn, rest = _partial_login(victim, "inflight")
    killed_at = time.monotonic()
    cluster.kill(victim)
    try:
        conn.sendall(rest)
        cut = _read_head(conn) == b""
    except OSError:
        cut = True
    finally:
        conn.close()
    # The client of the cut request retries through the proxy: another replica answers.
    retried = password_grant(f"{cluster.proxy_url}/auth", "inflight", xff="10.66.2.1")
    steady(3)
    victim.start()  # the orchestrator's restart; the others carried the load meanwhile
    steady(1)
    end = time.monotonic()
    report = load.report("SIGKILL of auth replica A", killed_at - 1, end, restored=killed_at)
    failed = [a for a in load.attempts_between(killed_at - 1, end) if not a.ok]
    report.extra = {
        "the test's own request in flight on A": f"cut: {cut}; retried through the proxy: "
        f"{retried.status_code}",
        "load attempts that failed (op, answer, start/end relative to the kill, s)": [
            (a.op, a.outcome, round(a.start - killed_at, 3), round(a.end - killed_at, 3))
            for a in failed
        ],
    }
    cluster_report.append(report)
    assert cut, "a request in flight on a SIGKILLed process can't have been answered"
    assert retried.status_code == 200, retried.text
    # Only what was in flight on the victim failed: nothing that started after the kill.
    late = [a for a in failed if a.start > killed_at + 0.2]
    assert not late, report.line()
    assert all(a.op in ("login", "refresh") for a in failed), report.line()
    # Every failed operation succeeded when the client retried it through the proxy.
    assert report.failed_operations == 0, report.line()


# -- PostgreSQL restarted mid-load ------------------------------------------------------------


@dataclass
class Outage:
    report: Report
    stopped: float
    restored: float
    readyz_during: dict[str, list[tuple[int | None, Any]]] = field(default_factory=dict)
    readyz_recovered: dict[str, float | None] = field(default_factory=dict)
    pids_before: dict[str, int | None] = field(default_factory=dict)
    pids_after: dict[str, int | None] = field(default_factory=dict)
    tracebacks: dict[str, list[str]] = field(default_factory=dict)
    observations: dict[str, Any] = field(default_factory=dict)


def _wait_ready_again(
    cluster: Cluster, since: float, timeout: float = 30
) -> dict[str, float | None]:
    recovered: dict[str, float | None] = {r.name: None for r in cluster.replicas}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(v is None for v in recovered.values()):
        for replica in cluster.replicas:
            if recovered[replica.name] is None and readyz(replica)[0] == 200:
                recovered[replica.name] = round(time.monotonic() - since, 2)
        time.sleep(0.1)
    return recovered


@pytest.fixture(scope="module")
def postgres_restart(cluster: Cluster, load: Load, cluster_report: list[Report]) -> Outage:
    offsets = cluster.log_offsets()
    pids = {r.name: r.pid for r in cluster.replicas}
    steady(1)
    stopped = time.monotonic()
    cluster.postgres.stop("fast")
    readyz_during: dict[str, list[tuple[int | None, Any]]] = {r.name: [] for r in cluster.replicas}
    while time.monotonic() - stopped < 6:
        for replica in cluster.replicas:
            readyz_during[replica.name].append(readyz(replica))
        time.sleep(0.5)
    cluster.postgres.start()
    restored = time.monotonic()
    recovered = _wait_ready_again(cluster, restored)
    load.wait_for_successes({"login", "refresh", "note_create", "note_list"}, restored, 30)
    steady(1)
    end = time.monotonic()
    report = load.report(
        f"PostgreSQL restarted (fast shutdown, {restored - stopped:.1f} s down)",
        stopped - 0.5,
        end,
        restored,
    )
    attempts = load.attempts_between(stopped - 0.5, end)
    failed = [a for a in attempts if not a.ok]
    bad = [a for a in failed if a.status != 503 or a.retry_after is None or a.end - a.start > HANG]
    tracebacks = cluster.tracebacks_since(offsets)
    outage = Outage(
        report=report,
        stopped=stopped,
        restored=restored,
        readyz_during=readyz_during,
        readyz_recovered=recovered,
        pids_before=pids,
        pids_after={r.name: r.pid for r in cluster.replicas},
        tracebacks=tracebacks,
        observations={
            "answers that were not 503 + Retry-After (op, status, seconds)": [
                (a.op, a.outcome, round(a.end - a.start, 2)) for a in bad
            ],
            "slowest answer during the window (s)": round(
                max((a.end - a.start for a in attempts), default=0), 2
            ),
        },
    )
    report.extra = {
        "readyz back to 200 after restart (s)": recovered,
        **outage.observations,
        "exceptions in the server logs": {k: exception_lines(v) for k, v in tracebacks.items()},
    }
    cluster_report.append(report)
    return outage


def test_postgres_restart_answers_503_with_retry_after_never_500_or_hang(
    postgres_restart: Outage,
) -> None:
    bad = postgres_restart.observations[
        "answers that were not 503 + Retry-After (op, status, seconds)"
    ]
    assert bad == [], f"{bad}\n{postgres_restart.report.extra['exceptions in the server logs']}"


def test_postgres_restart_shows_on_the_auth_readyz(
    postgres_restart: Outage, cluster: Cluster
) -> None:
    for replica in cluster.auth:
        statuses = [s for s, _ in postgres_restart.readyz_during[replica.name]]
        assert 503 in statuses, (replica.name, postgres_restart.readyz_during[replica.name])
        assert all(s in (200, 503) for s in statuses), statuses  # always an answer, fast


def test_postgres_restart_shows_on_the_resource_readyz(
    postgres_restart: Outage, cluster: Cluster
) -> None:
    for replica in cluster.resource:
        statuses = [s for s, _ in postgres_restart.readyz_during[replica.name]]
        assert 503 in statuses, (replica.name, postgres_restart.readyz_during[replica.name])


def test_postgres_restart_services_recover_without_restarting(
    postgres_restart: Outage, cluster: Cluster, load: Load
) -> None:
    assert postgres_restart.pids_after == postgres_restart.pids_before
    assert all(r.child.alive for r in cluster.replicas)
    assert all(v is not None and v < 15 for v in postgres_restart.readyz_recovered.values()), (
        postgres_restart.readyz_recovered
    )
    assert postgres_restart.report.failed_operations == 0, postgres_restart.report.line()
    assert postgres_restart.report.recovery is not None and postgres_restart.report.recovery < 10


def test_postgres_restart_loses_no_acknowledged_write(
    postgres_restart: Outage, cluster: Cluster, load: Load
) -> None:
    notes = [n for n in list(load.notes) if n.at < postgres_restart.restored + 5]
    assert notes
    rows = cluster.postgres.query(
        "resource",
        "SELECT id, owner, title, body FROM notes WHERE id = ANY($1::text[])",
        [n.id for n in notes],
    )
    found = {r["id"]: r for r in rows}
    missing = [n.id for n in notes if n.id not in found]
    assert not missing, f"{len(missing)} acknowledged notes lost"
    for note in notes:
        row = found[note.id]
        assert (row["owner"], row["title"], row["body"]) == (note.owner, note.title, note.body)
    sessions = [s.sid for s in list(load.sessions)]
    rows = cluster.postgres.query(
        "auth", "SELECT id FROM sessions WHERE id = ANY($1::text[])", sessions
    )
    assert len(rows) == len(set(sessions))


# -- Redis stopped mid-load -------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_outage(cluster: Cluster, load: Load, cluster_report: list[Report]) -> Outage:
    proxy_auth = f"{cluster.proxy_url}/auth"
    sign_up(cluster, "redisdown")
    sign_up(cluster, "redisguess")
    before = password_grant(proxy_auth, "redisdown", xff="10.66.1.1")
    assert before.status_code == 200, before.text
    assert cluster.redis.subscribers(REVOCATION_CHANNEL) == len(cluster.resource)
    offsets = cluster.log_offsets()
    pids = {r.name: r.pid for r in cluster.replicas}
    steady(1)
    stopped = time.monotonic()
    cluster.redis.stop()

    logins = [password_grant(proxy_auth, "redisdown", xff="10.66.1.1") for _ in range(3)]
    readyz_during = {r.name: [readyz(r)] for r in cluster.replicas}
    # Brute force while the shared counters are gone: limited per replica at worst.
    guesses = []
    for _ in range(LOGIN_FAILURE_LIMIT * len(cluster.auth) + 1):
        response = password_grant(proxy_auth, "redisguess", password="wrong guess", xff="10.66.1.2")
        guesses.append(response.status_code)
        if response.status_code == 429:
            break
    # Revocation while Redis is down: the polling feed must carry it.
    token = before.json()["access_token"]
    assert all(me_status(r, token) == 200 for r in cluster.resource)
    with http() as client:
        ended = client.delete(f"{proxy_auth}/sessions", headers=bearer(token))
    revoked_while_down = wait_until_refused(
        cluster.resource, token, timeout=RESOURCE_POLL_INTERVAL_WITH_REDIS + FEED_SETTLE + 5
    )
    for replica in cluster.replicas:
        readyz_during[replica.name].append(readyz(replica))
    logins += [password_grant(proxy_auth, "redisdown", xff="10.66.1.1") for _ in range(2)]
    steady(max(0.0, 8 - (time.monotonic() - stopped)))  # an outage of 8 s at least

    cluster.redis.start()
    restored = time.monotonic()
    resubscribed: float | None = None
    while time.monotonic() - restored < 25:
        if cluster.redis.subscribers(REVOCATION_CHANNEL) == len(cluster.resource):
            resubscribed = time.monotonic() - restored
            break
        time.sleep(0.1)
    # Pub/sub again: a revocation now arrives far sooner than a poll could bring it.
    after = password_grant(proxy_auth, "redisdown", xff="10.66.1.1")
    latencies: list[dict[str, float]] = []
    if after.status_code == 200:
        for _ in range(3):
            fresh = password_grant(proxy_auth, "redisdown", xff="10.66.1.1").json()["access_token"]
            assert all(me_status(r, fresh) == 200 for r in cluster.resource)
            with http() as client:
                sid = claims_of(fresh)["sid"]
                client.delete(f"{proxy_auth}/sessions/{sid}", headers=bearer(fresh))
            latencies.append(wait_until_refused(cluster.resource, fresh, timeout=10))
    load.wait_for_successes({"login", "refresh"}, restored, 30)
    end = time.monotonic()
    report = load.report(
        f"Redis stopped ({restored - stopped:.1f} s)", stopped - 0.5, end, restored
    )
    attempts = load.attempts_between(stopped, restored)
    outage = Outage(
        report=report,
        stopped=stopped,
        restored=restored,
        readyz_during=readyz_during,
        readyz_recovered=_wait_ready_again(cluster, restored),
        pids_before=pids,
        pids_after={r.name: r.pid for r in cluster.replicas},
        tracebacks=cluster.tracebacks_since(offsets),
        observations={
            "logins during the outage (test client)": [r.status_code for r in logins],
            "load attempts during the outage by op and answer": dict(
                sorted(
                    {
                        f"{op} {outcome}": sum(
                            1 for a in attempts if a.op == op and a.outcome == outcome
                        )
                        for op, outcome in {(a.op, a.outcome) for a in attempts}
                    }.items()
                )
            ),
            "wrong-password guesses during the outage (statuses until the first 429)": guesses,
            "log out everywhere during the outage": ended.status_code,
            "seconds until each resource replica refused the token (polling)": {
                k: round(v, 2) for k, v in revoked_while_down.items()
            },
            "seconds until both resource replicas resubscribed after Redis returned": (
                round(resubscribed, 2) if resubscribed is not None else None
            ),
            "revocation latency after Redis returned (s)": [
                {k: round(v, 3) for k, v in lat.items()} for lat in latencies
            ],
            "login after Redis returned": after.status_code,
            "readyz during the outage": readyz_during,
        },
    )
    report.extra = dict(outage.observations)
    report.extra["exceptions in the server logs"] = {
        k: exception_lines(v) for k, v in outage.tracebacks.items()
    }
    cluster_report.append(report)
    return outage


def test_redis_down_logins_keep_working(redis_outage: Outage) -> None:
    logins = redis_outage.observations["logins during the outage (test client)"]
    assert logins == [200] * len(logins)
    by_answer = redis_outage.observations["load attempts during the outage by op and answer"]
    assert not [k for k in by_answer if k.startswith("login ") and k != "login 200"], by_answer


def test_redis_down_login_failures_are_still_limited(redis_outage: Outage) -> None:
    guesses = redis_outage.observations[
        "wrong-password guesses during the outage (statuses until the first 429)"
    ]
    assert guesses[-1] == 429, guesses
    assert set(guesses[:-1]) == {400}, guesses


def test_redis_down_refresh_notes_and_me_keep_working(redis_outage: Outage) -> None:
    by_answer = redis_outage.observations["load attempts during the outage by op and answer"]
    for op, ok in (("refresh", 200), ("note_create", 201), ("note_list", 200), ("me", 200)):
        assert not [k for k in by_answer if k.startswith(f"{op} ") and k != f"{op} {ok}"], by_answer
    assert redis_outage.observations["log out everywhere during the outage"] == 204


def test_redis_down_revocation_still_arrives_by_polling(
    redis_outage: Outage, cluster: Cluster
) -> None:
    refused = redis_outage.observations[
        "seconds until each resource replica refused the token (polling)"
    ]
    assert set(refused) == {r.name for r in cluster.resource}, refused
    assert max(refused.values()) <= RESOURCE_POLL_INTERVAL_WITH_REDIS + FEED_SETTLE + 2


def test_redis_down_readyz_reports_degraded(redis_outage: Outage) -> None:
    for name, answers in redis_outage.readyz_during.items():
        for status, body in answers:
            assert status == 200, (name, status, body)  # still serving: degraded, not down
            assert isinstance(body, dict) and body.get("status") == "degraded", (name, body)
            assert body.get("checks", {}).get("redis") is False, (name, body)


def test_redis_back_pubsub_resumes_without_restart(redis_outage: Outage) -> None:
    obs = redis_outage.observations
    assert redis_outage.pids_after == redis_outage.pids_before
    assert obs["seconds until both resource replicas resubscribed after Redis returned"] is not None
    assert obs["login after Redis returned"] == 200
    latencies = obs["revocation latency after Redis returned (s)"]
    assert latencies and all(len(lat) == 2 for lat in latencies), latencies
    # Delivered by pub/sub: well under the 5 s feed interval, every time.
    assert statistics.median(max(lat.values()) for lat in latencies) < 0.5, latencies
    assert all(max(lat.values()) < 2 for lat in latencies), latencies
    assert all(v is not None for v in redis_outage.readyz_recovered.values())


# -- graceful shutdown and rolling restart ----------------------------------------------------


def test_sigterm_drains_an_in_flight_request(cluster: Cluster, load: Load) -> None:
    replica = cluster.auth[1]
    sign_up(cluster, "drained")
    cluster.nginx.set_down("auth", replica.port, True)  # the proxy first, as in a rollout
    try:
        conn, rest = _partial_login(replica, "drained")
        try:
            offset = replica.child.log_size()
            replica.child.send(signal.SIGTERM)
            time.sleep(0.5)
            assert replica.child.alive, "exited with a request in flight"
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", replica.port), timeout=2).close()
            conn.sendall(rest)
            answer = _read_head(conn)
        finally:
            conn.close()
        assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
        code = replica.child.wait(15)
        assert exited_gracefully(code, replica.child.log_since(offset)), (
            code,
            replica.log()[-3000:],
        )
    finally:
        if not replica.child.alive:
            replica.start()
        cluster.nginx.set_down("auth", replica.port, False)


def _several_workers(cluster: Cluster) -> Replica:
    """An auth replica as production runs it: `serve --workers 2` (deploy/entrypoint.sh), out of
    the proxy."""
    replica = Replica(
        "auth-workers", "auth-server", free_port(), cluster.auth_env, cluster.root / "auth", 2
    )
    replica.start()
    return replica


def test_sigterm_drains_in_flight_requests_with_several_workers(
    cluster: Cluster, load: Load
) -> None:
    """uvicorn's supervisor passes SIGTERM on to every worker, and each drains what it holds."""
    replica = _several_workers(cluster)
    try:
        sign_up(cluster, "drainedworkers")
        in_flight = [_partial_login(replica, "drainedworkers") for _ in range(4)]
        offset = replica.child.log_size()
        replica.child.send(signal.SIGTERM)
        time.sleep(0.8)
        assert replica.child.alive, "exited with requests in flight"
        answers = []
        for conn, rest in in_flight:
            try:
                conn.sendall(rest)
                answers.append(_read_head(conn)[:15])
            finally:
                conn.close()
        assert answers == [b"HTTP/1.1 200 OK"] * len(in_flight), answers
        code = replica.child.wait(20)
        shutdown_log = replica.child.log_since(offset)
        assert exited_gracefully(code, shutdown_log), (code, shutdown_log[-3000:])
        assert shutdown_log.count("Application shutdown complete") == 2  # both workers
    finally:
        replica.child.stop()


def test_sigterm_with_several_workers_refuses_new_connections(cluster: Cluster, load: Load) -> None:
    replica = _several_workers(cluster)
    try:
        sign_up(cluster, "refusedworkers")
        conn, rest = _partial_login(replica, "refusedworkers")  # keeps the drain going
        replica.child.send(signal.SIGTERM)
        time.sleep(0.8)
        try:
            socket.create_connection(("127.0.0.1", replica.port), timeout=2).close()
            refused = False
        except ConnectionRefusedError:
            refused = True
        finally:
            conn.sendall(rest)
            conn.close()
        assert refused, "a new connection was accepted while the workers drain"
    finally:
        replica.child.stop()


def test_graceful_rolling_restart_of_every_replica_fails_no_request(
    cluster: Cluster, load: Load, cluster_report: list[Report]
) -> None:
    steady(1)
    start = time.monotonic()
    codes = {}
    graceful = {}
    for replica in cluster.replicas:
        code, shutdown_log = cluster.restart_gracefully(replica)
        codes[replica.name] = code
        graceful[replica.name] = exited_gracefully(code, shutdown_log)
    steady(1)
    end = time.monotonic()
    report = load.report("graceful rolling restart of all 4 replicas", start, end, restored=end)
    report.extra = {"exit codes on SIGTERM": codes}
    cluster_report.append(report)
    assert all(graceful.values()), codes
    assert report.sent > 100, report.line()
    assert report.failed == 0, report.line()


# -- the end: invariants on the databases -----------------------------------------------------


def test_invariants_hold_in_the_databases(
    cluster: Cluster, load: Load, cluster_report: list[Report]
) -> None:
    load.stop()
    start = load.attempts[0].start if load.attempts else time.monotonic()
    whole = load.report("whole run", start, time.monotonic())
    cluster_report.append(whole)
    assert load.notes and load.sessions and load.users

    forks = cluster.postgres.query(
        "auth",
        "SELECT parent_id, count(*) AS children FROM refresh_tokens WHERE parent_id IS NOT NULL "
        "GROUP BY parent_id HAVING count(*) > 1",
    )
    assert forks == [], f"refresh tokens with more than one child: {forks}"
    live = cluster.postgres.query(
        "auth",
        "SELECT t.session_id, count(*) AS live FROM refresh_tokens t "
        "JOIN sessions s ON s.id = t.session_id "
        "WHERE t.used_at IS NULL AND s.ended_at IS NULL GROUP BY t.session_id HAVING count(*) > 1",
    )
    assert live == [], f"sessions with two live refresh tokens: {live}"
    orphans = cluster.postgres.query(
        "auth",
        "SELECT s.id FROM sessions s LEFT JOIN users u ON u.id = s.user_id WHERE u.id IS NULL",
    )
    assert orphans == [], f"sessions without a user: {orphans}"

    users = [sub for _, sub in load.users]
    rows = cluster.postgres.query("auth", "SELECT id FROM users WHERE id = ANY($1::text[])", users)
    assert len(rows) == len(set(users)), "an acknowledged sign-up is missing"
    sids = [s.sid for s in load.sessions]
    rows = cluster.postgres.query(
        "auth", "SELECT id FROM sessions WHERE id = ANY($1::text[])", sids
    )
    assert len(rows) == len(set(sids)), "an acknowledged login's session is missing"
    notes = list(load.notes)
    rows = cluster.postgres.query(
        "resource",
        "SELECT id, owner, title, body FROM notes WHERE id = ANY($1::text[])",
        [n.id for n in notes],
    )
    found = {r["id"]: (r["owner"], r["title"], r["body"]) for r in rows}
    lost = [n.id for n in notes if n.id not in found]
    changed = [n.id for n in notes if n.id in found and found[n.id] != (n.owner, n.title, n.body)]
    whole.extra = {
        "acknowledged": f"{len(users)} sign-ups, {len(sids)} logins, {len(notes)} notes",
        "lost": len(lost),
        "corrupted": len(changed),
        "answers that came before their commit, by operation": dict(load.early),
        "acknowledged writes that never reached the database": load.never_committed,
    }
    assert not lost and not changed, (lost[:10], changed[:10])
    assert load.never_committed == [], load.never_committed
    # Every acknowledgement came after its commit: the client's next request sees its write.
    assert dict(load.early) == {}, dict(load.early)
