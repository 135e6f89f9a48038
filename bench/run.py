"""`make bench`: what a request costs on the resource server, and whether a login storm takes the
auth server down, measured side by side in one run.

    python -m bench            # full run (< 10 min), writes docs/benchmarks.md and the chart
    python -m bench --quick    # smoke run (< 2 min), prints only (and writes var/bench/)

Real servers (`auth-server serve`, `resource-server serve`, reference apps in bench/apps.py) run
on loopback ports; wrk (one thread) drives them. Scenarios that are compared run interleaved,
round after round, and ratios are taken within a round, then the median over rounds is reported:
absolute figures drift from run to run on a 2-core machine, ratios measured side by side don't.
Every figure is printed with its target, as met or short; the exit status is 0 even when a
target is short, and non-zero only when the benchmark itself broke.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import datetime as dt
import functools
import hashlib
import json
import math
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import time
import traceback
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import seed
from bench.harness import REPO, BenchmarkBroken, Harness, Server, free_port
from bench.report import SCENARIOS, Report, Target, chart, median, percentile
from bench.wrk import WrkResult, WrkRun

PASSWORD = "correct horse battery staple 42"
LOGIN_USERS = 64  # seeded users with a real (production-cost) password hash
CONFIDENTIAL_CLIENT = "bench-confidential"
CODE_CLIENT = "bench-app"  # a first-party public client of the code flow (scenario 9)
CODE_REDIRECT = "http://127.0.0.1:9/bench/callback"  # never opened: the code is read from it
# A login burst counts as bounded when every login got its answer (a token or a 503) this fast.
BURST_ANSWER_BOUND = 10.0
DOCS = REPO / "docs"
SCRATCH = REPO / "var" / "bench"


@dataclass(frozen=True)
class Plan:
    quick: bool
    rounds: int
    duration: int  # seconds per wrk run
    warmup: int
    storm_duration: int
    pool: int  # refresh tokens per chained-refresh pool
    growth_large: int
    revocation_trials: int
    parity_samples: int
    cold_starts: int
    connections: int = 32
    storm_connections: int = 16
    overload_connections: int = 64
    burst_timeout: float = 60
    growth_small: int = 1000
    growth_connections: int = 8
    denylist: int = 100_000
    probe_delay_ms: int = 10

    @classmethod
    def make(cls, quick: bool, rounds: int | None, duration: int | None) -> Plan:
        if quick:
            plan = cls(
                quick=True,
                rounds=1,
                duration=2,
                warmup=0,
                storm_duration=3,
                pool=1024,
                growth_large=100_000,
                revocation_trials=20,
                parity_samples=8,
                cold_starts=1,
                # Above the default capacity of 2 cores (2 hashing + 32 queued): some must be
                # refused for the figure to say anything.
                overload_connections=48,
                burst_timeout=20,
            )
        else:
            plan = cls(
                quick=False,
                rounds=4,
                duration=3,
                warmup=1,
                storm_duration=5,
                pool=4096,
                growth_large=1_000_000,
                revocation_trials=100,
                parity_samples=30,
                cold_starts=3,
            )
        changes: dict[str, Any] = {}
        if rounds:
            changes["rounds"] = rounds
        if duration:
            changes["duration"] = duration
        return cls(**{**plan.__dict__, **changes}) if changes else plan


@dataclass
class Chain:
    """A pool of refresh tokens that wrk rotates (bench/lua/refresh.lua); kept between runs."""

    path: Path

    @classmethod
    def create(cls, harness: Harness, name: str, tokens: list[str]) -> Chain:
        path = harness.path("tokens", f"{name}.txt")
        path.write_text("\n".join(tokens) + "\n")
        return cls(path)

    def config(self, path: str = "/token") -> dict[str, Any]:
        return {
            "tokens_in": str(self.path),
            "tokens_out": str(self.path) + ".out",
            "client_id": "web",
            "path": path,
        }

    def advance(self) -> int:
        out = Path(str(self.path) + ".out")
        if out.exists() and out.stat().st_size > 0:
            out.replace(self.path)
        return sum(1 for line in self.path.read_text().splitlines() if line)


@dataclass
class Load:
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    connections: int = 32
    scripts: tuple[str, ...] = ()
    config: dict[str, Any] = field(default_factory=dict)
    chain: Chain | None = None
    warmup: bool = True
    # Password logins: driven from Python (bench/run.py closed_loop_logins), not wrk. Argon2
    # makes each login take seconds under load, and wrk counts only what completes inside its
    # window; this waits for the last login and divides by the real elapsed time.
    logins: list[str] | None = None


class Bench:
    def __init__(self, harness: Harness, plan: Plan, report: Report) -> None:
        self.h = harness
        self.plan = plan
        self.report = report
        self.seed = f"b{harness.run_id}"
        self.next_token = 1
        self.pool_size = 0
        self.auth: Server | None = None
        self.auth_env: dict[str, str] = {}
        self.issuer = ""
        self.main_db = ""
        self.client_secret = ""
        self.rss: dict[str, list[float]] = {}
        self._serve_defaults: dict[str, str] = {}
        self.other_load: list[float] = []  # share of the CPUs other jobs used, per measurement

    # -- environments ---------------------------------------------------------------------------

    def auth_env_for(
        self, issuer: str, database_url: str, name: str, *, redis: bool = True
    ) -> dict[str, str]:
        from tests.e2e.servers import auth_env

        # Production Argon2 costs (fast_hashing=False). The failure throttles are lifted so that
        # the parity scenario's hundred wrong passwords from one address are hashed, not 429'd;
        # the throttle's bookkeeping still runs on every attempt.
        env = auth_env(issuer, database_url, self.h.path("var", name), fast_hashing=False)
        # AUTH_CLIENT_RATE_LIMIT (refreshes per client and address per minute) is lifted too: one
        # load generator on 127.0.0.1 stands for many clients. Per-session limits stay as they
        # are: the refresh pools are large enough that no session refreshes often.
        env |= {
            "AUTH_LOGIN_FAILURE_LIMIT": "1000000",
            "AUTH_LOGIN_IP_LIMIT": "1000000",
            "AUTH_LOGIN_ACCOUNT_LIMIT": "1000000",
            "AUTH_CLIENT_RATE_LIMIT": "100000000",
        }
        if redis:
            env |= {"AUTH_REDIS_URL": self.h.redis_url, "AUTH_REDIS_PREFIX": self.h.redis_prefix}
        return env

    def resource_env_for(
        self, issuer: str, name: str, *, database_url: str | None = None, redis: bool = False
    ) -> dict[str, str]:
        from tests.e2e.servers import resource_env

        database_url = database_url or f"sqlite+aiosqlite:///{self.h.path('db', name + '.db')}"
        env = resource_env(issuer, database_url, self.h.path("var", name))
        if redis:
            env |= {
                "RESOURCE_REDIS_URL": self.h.redis_url,
                "RESOURCE_REDIS_PREFIX": self.h.redis_prefix,
            }
        return env

    def serve_defaults(self) -> dict[str, str]:
        if not self._serve_defaults:
            self._serve_defaults = resource_serve_defaults(self.h.workdir)
        return self._serve_defaults

    def start_reference(self, kind: str, env: dict[str, str]) -> Server:
        from tests.e2e.servers import base_env

        port = free_port()
        path = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(REPO)) if p)
        full_env = base_env() | {"PYTHONPATH": path} | self.serve_defaults() | env
        return self.h.start(
            f"ref-{kind}",
            [sys.executable, "-m", "bench.refserve", kind, str(port)],
            full_env,
            port,
            ready_path="/openapi.json",
        )

    # -- tokens ---------------------------------------------------------------------------------

    def take(self, count: int) -> list[str]:
        if self.next_token + count - 1 > self.pool_size:
            raise BenchmarkBroken("the seeded refresh-token pool is exhausted")
        tokens = [
            seed.refresh_token(self.seed, n)
            for n in range(self.next_token, self.next_token + count)
        ]
        self.next_token += count
        return tokens

    def pairs(self, auth_url: str, count: int) -> list[tuple[str, str]]:
        """`count` fresh (access token, refresh token) pairs, by refreshing seeded sessions."""
        tokens = self.take(count)

        async def run() -> list[tuple[str, str]]:
            async with httpx.AsyncClient(timeout=30) as http:
                sem = asyncio.Semaphore(8)

                async def one(token: str) -> tuple[str, str]:
                    async with sem:
                        body = await refresh_async(http, auth_url, token)
                        return body["access_token"], body["refresh_token"]

                return list(await asyncio.gather(*(one(t) for t in tokens)))

        return asyncio.run(run())

    def access_token(self, auth_url: str | None = None) -> str:
        return self.pairs(auth_url or self.main_url(), 1)[0][0]

    def main_url(self) -> str:
        assert self.auth is not None
        return self.auth.url

    # -- load -----------------------------------------------------------------------------------

    def wrk(self, name: str, load: Load, duration: int, **config: Any) -> WrkRun:
        """A wrk run of `load`; `config` adds to the Lua CONFIG (e.g. delay_ms for probes)."""
        scripts = load.scripts
        merged = dict(load.config)
        if load.chain is not None:
            merged |= load.chain.config(urllib.parse.urlsplit(load.url).path)
            scripts = ("refresh.lua",)
        merged |= config
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        return WrkRun(
            self.h.workdir,
            slug,
            load.url,
            connections=load.connections,
            duration=duration,
            scripts=scripts,
            config=merged,
            headers=load.headers,
        )

    def measure(self, name: str, load: Load, duration: int) -> WrkResult:
        meter = self.h.meter()
        if load.logins is not None:
            result = asyncio.run(
                closed_loop_logins(load.url, load.logins, load.connections, duration, 60)
            )
        else:
            result = self.wrk(name, load, duration).run()
        result.other_load = meter.stop()
        self.other_load.append(result.other_load)
        if load.chain is not None:
            load.chain.advance()
        return result

    def interleaved(
        self, loads: dict[str, Load], *, rounds: int, duration: int, warmup: int
    ) -> dict[str, list[WrkResult]]:
        """Every load once per round, rounds one after the other; each round starts one place
        further along the list, so no load always follows the same neighbour."""
        if warmup:
            for name, load in loads.items():
                if load.warmup:
                    self.measure(name + " warm-up", load, warmup)
            self.h.settle()
        results: dict[str, list[WrkResult]] = {name: [] for name in loads}
        names = list(loads)
        for r in range(rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                results[name].append(self.measure(name, loads[name], duration))
                self.h.settle()
            summary = ", ".join(f"{n} {results[n][-1].good_rps():,.0f}/s" for n in names)
            print(f"  round {r + 1}/{rounds}: {summary}", flush=True)
        return results

    # -- setup ----------------------------------------------------------------------------------

    def setup(self) -> None:
        """The main auth server: PostgreSQL, Redis, production Argon2 costs, one worker."""
        h = self.h
        self.main_db, url = h.create_database("auth")
        port = free_port()
        self.issuer = f"http://127.0.0.1:{port}"
        self.auth_env = self.auth_env_for(self.issuer, url, "auth")
        h.cli("auth-server", ["migrate"], self.auth_env)
        h.cli(
            "auth-server",
            ["users", "create", "benchlogin", "--email", "benchlogin@example.com"],
            self.auth_env,
            stdin=PASSWORD + "\n",
        )
        out = h.cli(
            "auth-server",
            [
                "clients",
                "create",
                CONFIDENTIAL_CLIENT,
                "--confidential",
                "--grant",
                "client_credentials",
                "--scope",
                "notes:read",
            ],
            self.auth_env,
        )
        self.client_secret = out.strip().splitlines()[-1].strip()
        h.cli(
            "auth-server",
            ["clients", "create", CODE_CLIENT, "--first-party", "--redirect-uri", CODE_REDIRECT],
            self.auth_env,
        )
        rows = h.pg_fetch(seed.PASSWORD_HASH_SQL, "benchlogin", database=self.main_db)
        if not rows:
            raise BenchmarkBroken(
                "the user made by `auth-server users create` is not in the database"
            )
        password_hash = rows[0][0]
        p = self.plan
        self.pool_size = 2 * p.pool + 256 + 2 * p.revocation_trials + 64
        h.pg_session(
            self.main_db,
            lambda conn: seed.seed_sessions(
                conn, self.seed, self.pool_size, users=LOGIN_USERS, password_hash=password_hash
            ),
        )
        self.auth = h.serve("auth", "auth-server", self.auth_env, port=port)
        self.rss["auth (1 worker), fresh"] = self.auth.rss_per_worker_mib()

    # ===========================================================================================
    # Scenarios 1 and 2: verification cost on the resource server

    def scenario_verification(self) -> None:
        h, p, r = self.h, self.plan, self.report
        servers: list[Server] = []
        try:
            # An auth server whose feed holds `denylist` entries before its resource server starts.
            deny_db, deny_url = h.create_database("deny")
            deny_port = free_port()
            deny_issuer = f"http://127.0.0.1:{deny_port}"
            deny_env = self.auth_env_for(deny_issuer, deny_url, "auth-deny", redis=False)
            h.cli("auth-server", ["migrate"], deny_env)
            deny_seed = f"d{h.run_id}"
            h.pg_session(deny_db, lambda c: seed.seed_sessions(c, deny_seed, 4, users=1))
            marker = seed.session_id(deny_seed, 2)
            h.pg_session(deny_db, lambda c: seed.seed_revocations(c, deny_seed, p.denylist, marker))
            auth_deny = h.serve("auth-denylist", "auth-server", deny_env, port=deny_port)
            servers.append(auth_deny)

            _, res_url = h.create_database("res")
            res_sqlite = h.serve(
                "resource-sqlite",
                "resource-server",
                self.resource_env_for(self.issuer, "resource-sqlite"),
            )
            servers.append(res_sqlite)
            res_pg = h.serve(
                "resource-pg",
                "resource-server",
                self.resource_env_for(self.issuer, "resource-pg", database_url=res_url),
            )
            servers.append(res_pg)
            res_deny = h.serve(
                "resource-denylist",
                "resource-server",
                self.resource_env_for(deny_issuer, "resource-denylist"),
            )
            servers.append(res_deny)
            # The same server with uvicorn's access log on (RESOURCE_ACCESS_LOG=true, to a file):
            # what the default of `serve` (off) saves.
            res_logged = h.serve(
                "resource-access-log",
                "resource-server",
                self.resource_env_for(self.issuer, "resource-access-log")
                | {"RESOURCE_ACCESS_LOG": "true", "RESOURCE_LOG_LEVEL": "INFO"},
            )
            servers.append(res_logged)
            bare = self.start_reference("bare", {})
            servers.append(bare)
            naive = self.start_reference("naive", {"BENCH_ISSUER": self.issuer})
            servers.append(naive)
            intro = self.start_reference(
                "introspect",
                {
                    "BENCH_ISSUER": self.issuer,
                    "BENCH_CLIENT_ID": CONFIDENTIAL_CLIENT,
                    "BENCH_CLIENT_SECRET": self.client_secret,
                },
            )
            servers.append(intro)

            token = self.access_token()
            deny_token = refresh_sync(auth_deny.url, seed.refresh_token(deny_seed, 1))[
                "access_token"
            ]
            bearer = {"Authorization": f"Bearer {token}"}
            deny_bearer = {"Authorization": f"Bearer {deny_token}"}
            note_sqlite = create_note(res_sqlite.url, bearer)
            note_pg = create_note(res_pg.url, bearer)
            # A token of the session that the feed's last entry ends: refused once all is read.
            marker_token = refresh_sync(auth_deny.url, seed.refresh_token(deny_seed, 2))
            loaded, count, waited = wait_denylist(
                res_deny, p.denylist, str(marker_token["access_token"])
            )
            note = (
                f"all {p.denylist:,} entries applied {waited:.1f} s after the resource server was spawned"
                + (f" (/metrics: {count:,} events applied)" if count else "")
                if loaded
                else f"the denylist was not loaded after {waited:.0f} s"
            )
            if not loaded:
                raise BenchmarkBroken(note)
            self.report.raw["denylist_load"] = note
            c = p.connections
            # Cyclic order puts each compared pair side by side (me next to bare and to the
            # denylist case; naive next to bare); introspection last, as its backlog is longest.
            loads = {
                "naive": Load(f"{naive.url}/me", bearer, connections=c),
                "bare": Load(f"{bare.url}/me", connections=c),
                "me": Load(f"{res_sqlite.url}/me", bearer, connections=c),
                "me_access_log": Load(f"{res_logged.url}/me", bearer, connections=c),
                "me_denylist": Load(f"{res_deny.url}/me", deny_bearer, connections=c),
                "healthz": Load(f"{res_sqlite.url}/healthz", connections=c),
                "notes_sqlite": Load(
                    f"{res_sqlite.url}/notes/{note_sqlite}", bearer, connections=c
                ),
                "healthz_pg": Load(f"{res_pg.url}/healthz", connections=c),
                "me_pg": Load(f"{res_pg.url}/me", bearer, connections=c),
                "notes_pg": Load(f"{res_pg.url}/notes/{note_pg}", bearer, connections=c),
                # Bound by the auth server's Argon2 check of the client secret: more connections
                # would only lengthen the queue (and the backlog after each run).
                "introspection": Load(f"{intro.url}/me", bearer, connections=8),
            }
            for name, load in loads.items():
                status = httpx.get(load.url, headers=load.headers, timeout=30).status_code
                if status != 200:
                    raise BenchmarkBroken(f"{name}: GET {load.url} answered {status}, not 200")
            print(
                f"  scenario 1/2: {len(loads)} loads x {p.rounds} rounds x {p.duration} s",
                flush=True,
            )
            res = self.interleaved(loads, rounds=p.rounds, duration=p.duration, warmup=p.warmup)
            self.rss["resource (SQLite), after load"] = res_sqlite.rss_per_worker_mib()
            self.rss["resource (PostgreSQL), after load"] = res_pg.rss_per_worker_mib()
            self.rss["resource (100k denylist), after load"] = res_deny.rss_per_worker_mib()
            self.rss["bare FastAPI app, after load"] = bare.rss_per_worker_mib()
        finally:
            h.stop(*servers)

        rps = {name: [x.good_rps() for x in runs] for name, runs in res.items()}
        bad = {name: sum(x.bad for x in runs) for name, runs in res.items()}
        self.report.raw["scenario1_rounds"] = rps
        self.report.raw["scenario1_other"] = {n: [x.other_load for x in r] for n, r in res.items()}
        self.report.raw["scenario1_errors"] = bad

        def ratio(a: str, b: str) -> float:
            return median([div(x, y) for x, y in zip(rps[a], rps[b], strict=True)])

        def errors(*names: str) -> str:
            n = sum(bad[x] for x in names)
            return f"{n:,} failed requests" if n else ""

        r.add(
            1,
            "/me vs bare FastAPI app",
            ratio("me", "bare"),
            "x",
            Target(">=", 0.85),
            errors("me", "bare"),
        )
        r.add(
            1,
            "/me vs naive PyJWT app",
            ratio("me", "naive"),
            "x",
            Target(">=", 2.0),
            errors("me", "naive"),
        )
        r.add(
            1,
            "/me with 100,000 denylist entries vs empty",
            ratio("me_denylist", "me"),
            "x",
            Target(">=", 0.95),
            note,
        )
        r.add(
            1,
            "/me with uvicorn's access log on vs off (the default)",
            ratio("me_access_log", "me"),
            "x",
            note=errors("me_access_log"),
        )
        r.add(1, "/healthz (no auth) vs bare app", ratio("healthz", "bare"), "x")
        r.add(1, "naive PyJWT app vs bare app", ratio("naive", "bare"), "x")
        r.add(
            1,
            "introspection per request vs bare app",
            ratio("introspection", "bare"),
            "x",
            note=errors("introspection"),
        )
        r.add(1, "/me vs /healthz on the same server", ratio("me", "healthz"), "x")
        for name, label in (
            ("bare", "bare FastAPI app"),
            ("healthz", "our /healthz"),
            ("me", "our /me"),
            ("me_access_log", "our /me, access log on"),
            ("me_denylist", "our /me, 100k denylist"),
            ("naive", "naive PyJWT app"),
            ("introspection", "introspection per request"),
        ):
            r.add(1, f"throughput: {label}", median(rps[name]), "/s")
        self.report.raw["scenario1_relative"] = {
            "bare FastAPI app": 1.0,
            "our /healthz": ratio("healthz", "bare"),
            "our /me": ratio("me", "bare"),
            "our /me, 100k denylist": ratio("me_denylist", "bare"),
            "naive PyJWT app": ratio("naive", "bare"),
            "introspection per request": ratio("introspection", "bare"),
        }

        def share(me: str, health: str, notes: str) -> float:
            values = [
                (div(1, m) - div(1, hz)) * n * 100
                for m, hz, n in zip(rps[me], rps[health], rps[notes], strict=True)
            ]
            return median(values)

        r.add(
            2,
            "GET /notes/{id}, SQLite",
            median(rps["notes_sqlite"]),
            "/s",
            note=errors("notes_sqlite"),
        )
        r.add(
            2, "GET /notes/{id}, PostgreSQL", median(rps["notes_pg"]), "/s", note=errors("notes_pg")
        )
        r.add(
            2,
            "authentication share of GET /notes/{id}, SQLite",
            share("me", "healthz", "notes_sqlite"),
            "%",
            note="(1/rps(/me) - 1/rps(/healthz)) / (1/rps(/notes/{id}))",
        )
        r.add(
            2,
            "authentication share of GET /notes/{id}, PostgreSQL",
            share("me_pg", "healthz_pg", "notes_pg"),
            "%",
        )

    # ===========================================================================================
    # Scenario 3: token endpoint throughput

    def scenario_tokens(self) -> None:
        h, p, r = self.h, self.plan, self.report
        assert self.auth is not None
        auth2 = h.serve("auth-2-workers", "auth-server", self.auth_env, workers=2)
        try:
            form = {"Content-Type": "application/x-www-form-urlencoded"}
            basic = httpx.BasicAuth(CONFIDENTIAL_CLIENT, self.client_secret)
            cc_headers = form | {"Authorization": basic._auth_header}
            users = [seed.username(self.seed, n) for n in range(1, LOGIN_USERS + 1)]
            loads = {
                "refresh, 1 worker": Load(
                    f"{self.auth.url}/token", chain=Chain.create(h, "refresh-1w", self.take(p.pool))
                ),
                "refresh, 2 workers": Load(
                    f"{auth2.url}/token", chain=Chain.create(h, "refresh-2w", self.take(p.pool))
                ),
                "client_credentials, 2 workers": Load(
                    f"{auth2.url}/token",
                    connections=p.storm_connections,
                    scripts=("status.lua",),
                    config={
                        "method": "POST",
                        "body": "grant_type=client_credentials&scope=notes%3Aread",
                        "headers": cc_headers,
                    },
                    warmup=False,
                ),
                "password, 2 workers": Load(
                    f"{auth2.url}/token",
                    connections=p.storm_connections,
                    logins=users,
                    warmup=False,
                ),
            }
            print(
                f"  scenario 3: {len(loads)} loads x {p.rounds} rounds x {p.duration} s", flush=True
            )
            res = self.interleaved(loads, rounds=p.rounds, duration=p.duration, warmup=p.warmup)
            self.rss["auth (1 worker), after token load"] = self.auth.rss_per_worker_mib()
            self.rss["auth (2 workers), after token load, per worker"] = auth2.rss_per_worker_mib()
        finally:
            h.stop(auth2)

        def ok(name: str) -> list[float]:
            return [x.ok_rps() for x in res[name]]

        def failures(name: str) -> str:
            runs = res[name]
            total = sum(x.requests for x in runs)
            good = sum(x.ok() for x in runs)
            statuses: dict[str, int] = {}
            for x in runs:
                for k, v in x.statuses.items():
                    if k != "200":
                        statuses[k] = statuses.get(k, 0) + v
            timeouts = sum(x.errors.get("timeout", 0) for x in runs)
            silent = sum(1 for x in runs if x.requests == 0)
            parts = [f"{v:,} x {k}" for k, v in sorted(statuses.items())]
            if timeouts:
                parts.append(f"{timeouts:,} timeouts")
            text = f"{total - good:,} of {total:,} not 200: " + ", ".join(parts) if parts else ""
            if silent:
                gap = f"no response at all during {silent} of {len(runs)} runs (server stuck?)"
                text = f"{text}; {gap}" if text else gap
            return text

        self.report.raw["scenario3_rounds"] = {n: ok(n) for n in res}
        self.report.raw["scenario3_other"] = {n: [x.other_load for x in r] for n, r in res.items()}
        self.report.raw["scenario3_rps"] = {
            "refresh\n1 worker": median(ok("refresh, 1 worker")),
            "refresh\n2 workers": median(ok("refresh, 2 workers")),
            "client_credentials\n2 workers": median(ok("client_credentials, 2 workers")),
            "password\n2 workers": median(ok("password, 2 workers")),
        }
        r.add(
            3,
            "refresh_token grant, 2 workers, PostgreSQL",
            median(ok("refresh, 2 workers")),
            "/s",
            Target(">=", 1000),
            failures("refresh, 2 workers"),
        )
        r.add(
            3,
            "refresh_token grant, 1 worker, PostgreSQL",
            median(ok("refresh, 1 worker")),
            "/s",
            note=failures("refresh, 1 worker"),
        )
        r.add(
            3,
            "refresh p99, 2 workers (wrk -c32)",
            p99_or_none(res["refresh, 2 workers"]),
            "ms",
        )
        r.add(
            3,
            "refresh p99, 1 worker (wrk -c32)",
            p99_or_none(res["refresh, 1 worker"]),
            "ms",
        )
        r.add(
            3,
            f"client_credentials grant, 2 workers (wrk -c{p.storm_connections})",
            median(ok("client_credentials, 2 workers")),
            "/s",
            note=failures("client_credentials, 2 workers"),
        )
        r.add(
            3,
            f"password grant (logins), 2 workers ({p.storm_connections} clients)",
            median(ok("password, 2 workers")),
            "/s",
            note=failures("password, 2 workers"),
        )

    # ===========================================================================================
    # Scenario 4: a login storm

    def scenario_storm(self) -> None:
        h, p, r = self.h, self.plan, self.report
        assert self.auth is not None
        url = self.auth.url
        users = [seed.username(self.seed, n) for n in range(1, LOGIN_USERS + 1)]
        chain = Chain.create(h, "storm-probe", self.take(256))
        probes = {
            "/healthz": Load(f"{url}/healthz", connections=1),
            "/.well-known/jwks.json": Load(f"{url}/.well-known/jwks.json", connections=1),
            "refresh": Load(f"{url}/token", connections=1, chain=chain),
        }
        delay = {"delay_ms": p.probe_delay_ms}
        idle: dict[str, list[WrkResult]] = {n: [] for n in probes}
        busy: dict[str, list[WrkResult]] = {n: [] for n in probes}
        storms: list[WrkResult] = []
        print(
            f"  scenario 4: {min(3, p.rounds)} rounds of idle probes, then probes during a "
            f"{p.storm_connections}-way login storm",
            flush=True,
        )
        for _ in range(min(3, p.rounds)):
            runs = {
                n: self.wrk(f"probe idle {n}", load, p.storm_duration, **delay).start()
                for n, load in probes.items()
            }
            for n, run in runs.items():
                idle[n].append(run.result())
            chain.advance()
            h.settle()

            async def storm_with_probes() -> tuple[WrkResult, dict[str, WrkRun]]:
                storm = asyncio.create_task(
                    closed_loop_logins(
                        f"{url}/token", users, p.storm_connections, p.storm_duration + 2, 60
                    )
                )
                await asyncio.sleep(1.0)  # the probes start once the storm is on
                started = {
                    n: self.wrk(f"probe storm {n}", load, p.storm_duration, **delay).start()
                    for n, load in probes.items()
                }
                return await storm, started

            storm_result, runs = asyncio.run(storm_with_probes())
            for n, run in runs.items():
                busy[n].append(run.result())
            chain.advance()
            storms.append(storm_result)
            h.settle()
        # Overload: a burst of far more concurrent logins than there are cores, each answered.
        burst = asyncio.run(
            login_burst(f"{url}/token", users, p.overload_connections, p.burst_timeout)
        )
        self.rss["auth (1 worker), after login storm"] = self.auth.rss_per_worker_mib()
        h.settle()

        def p99(runs: list[WrkResult]) -> float | None:
            """Median over rounds of the p99; None when a round got no answer at all."""
            if any(x.requests == 0 for x in runs):
                return None
            return median([x.p("p99") for x in runs])

        def idle_note(name: str) -> str:
            value = p99(idle[name])
            return f"idle: {value:.2f} ms" if value is not None else "idle: no answer"

        def storm_note(name: str) -> str:
            silent = sum(1 for x in busy[name] if x.requests == 0)
            note = idle_note(name)
            if silent:
                note += f"; no answer at all during {silent} of {len(busy[name])} storms"
            return note

        self.report.raw["scenario4_p99"] = {
            n: {"idle": p99(idle[n]) or math.nan, "storm": p99(busy[n]) or math.nan} for n in probes
        }
        r.add(
            4,
            "/healthz p99 during the login storm",
            p99(busy["/healthz"]),
            "ms",
            Target("<", 10),
            note=storm_note("/healthz"),
        )
        r.add(
            4,
            "/.well-known/jwks.json p99 during the login storm",
            p99(busy["/.well-known/jwks.json"]),
            "ms",
            note=storm_note("/.well-known/jwks.json"),
        )
        r.add(
            4,
            "refresh p99 during the login storm",
            p99(busy["refresh"]),
            "ms",
            note=storm_note("refresh"),
        )
        r.add(
            4,
            f"logins/s during the storm ({p.storm_connections}-way)",
            median([x.ok_rps() for x in storms]),
            "/s",
            note=f"login p99 {median([x.p('p99') for x in storms]):,.0f} ms",
        )
        ok_times = [t for status, t, _ in burst if status == 200]
        refused = [t for status, t, retry in burst if status == 503 and retry]
        other: dict[str, int] = {}
        for status, _, retry in burst:
            if status not in (200, 503) or (status == 503 and not retry):
                key = "no answer" if status == 0 else str(status)
                other[key] = other.get(key, 0) + 1
        observed = f"{len(ok_times)} ok, {len(refused)} x 503 + Retry-After" + "".join(
            f", {v} x {k}" for k, v in sorted(other.items())
        )
        answered = [t for status, t, _ in burst if status != 0]
        slowest = max(answered) if answered else math.inf
        bound = BURST_ANSWER_BOUND
        r.add_check(
            4,
            f"burst of {p.overload_connections} concurrent logins: excess refused",
            observed,
            met=bool(refused) and "no answer" not in other and slowest <= bound,
            target_text=f"503 + Retry-After; all answered within {bound:.0f} s",
            note=f"slowest answer {slowest:.1f} s"
            + (f", slowest 503 {max(refused):.2f} s" if refused else ", every login queued")
            + (f"; no answer within {p.burst_timeout:.0f} s counts as none" if other else ""),
        )
        self.report.raw["scenario4_burst"] = burst

    # ===========================================================================================
    # Scenario 5: growth

    def scenario_growth(self) -> None:
        h, p, r = self.h, self.plan, self.report
        sizes = {"small": p.growth_small, "large": p.growth_large}
        servers: list[Server] = []
        chains: dict[str, Chain] = {}
        load_seconds: dict[str, float] = {}
        try:
            for key, sessions in sizes.items():
                db, url = h.create_database(f"growth_{key}")
                port = free_port()
                env = self.auth_env_for(f"http://127.0.0.1:{port}", url, f"auth-growth-{key}")
                h.cli("auth-server", ["migrate"], env)
                gseed = f"g{key[0]}{h.run_id}"
                started = time.monotonic()
                h.pg_session(
                    db, functools.partial(seed.seed_sessions, seed=gseed, sessions=sessions)
                )
                load_seconds[key] = time.monotonic() - started
                print(
                    f"  scenario 5: {sessions:,} sessions loaded in {load_seconds[key]:.1f} s",
                    flush=True,
                )
                picks = random.Random(1).sample(range(1, sessions + 1), min(sessions, 1000))
                chains[key] = Chain.create(
                    h, f"growth-{key}", [seed.refresh_token(gseed, n) for n in picks]
                )
                servers.append(h.serve(f"auth-growth-{key}", "auth-server", env, port=port))
            h.settle()
            loads = {
                key: Load(
                    f"{server.url}/token", connections=p.growth_connections, chain=chains[key]
                )
                for key, server in zip(sizes, servers, strict=True)
            }
            res = self.interleaved(loads, rounds=p.rounds, duration=p.duration, warmup=p.warmup)
        finally:
            h.stop(*servers)
        small, large = res["small"], res["large"]
        # Latency only counts in rounds where refreshes succeeded on both sides.
        ratios = [
            div(b.p("p50"), a.p("p50"))
            for a, b in zip(small, large, strict=True)
            if a.ok() and b.ok()
        ]
        label = f"{p.growth_large:,}"
        r.add(
            5,
            f"refresh median, {label} vs 1,000 sessions",
            median(ratios),
            "x",
            Target("<=", 1.3),
            note=f"wrk -c{p.growth_connections}, 1 worker; {label} sessions bulk-loaded in "
            f"{load_seconds['large']:.0f} s",
        )
        r.add(
            5, "refresh median latency, 1,000 sessions", median([x.p("p50") for x in small]), "ms"
        )
        r.add(
            5,
            f"refresh median latency, {label} sessions",
            median([x.p("p50") for x in large]),
            "ms",
        )
        r.add(
            5,
            f"refresh throughput, {label} vs 1,000 sessions",
            median([div(b.ok_rps(), a.ok_rps()) for a, b in zip(small, large, strict=True)]),
            "x",
        )

    # ===========================================================================================
    # Scenario 6: revocation latency

    def scenario_revocation(self) -> None:
        h, p, r = self.h, self.plan, self.report
        servers: list[Server] = []
        try:
            with_redis = h.serve(
                "resource-redis",
                "resource-server",
                self.resource_env_for(self.issuer, "resource-redis", redis=True),
            )
            servers.append(with_redis)
            polling = h.serve(
                "resource-polling",
                "resource-server",
                self.resource_env_for(self.issuer, "resource-polling"),
            )
            servers.append(polling)
            n = p.revocation_trials
            pairs = self.pairs(self.main_url(), 2 * n)
            print(f"  scenario 6: {n} revocations through Redis, {n} through polling", flush=True)
            redis_lat = asyncio.run(
                revocation_trials(self.main_url(), with_redis.url, pairs[:n], 1, 0.0, 0.0)
            )
            h.settle()
            poll_lat = asyncio.run(
                revocation_trials(self.main_url(), polling.url, pairs[n:], 10, 0.005, 2.5)
            )
        finally:
            h.stop(*servers)
        redis_ms, poll_ms = [x * 1000 for x in redis_lat], [x * 1000 for x in poll_lat]
        missed = sum(1 for x in redis_lat + poll_lat if math.isinf(x))
        self.report.raw["scenario6"] = {"redis_ms": redis_ms, "polling_ms": poll_ms}
        note = f"{missed} trials never refused within 15 s" if missed else ""
        r.add(
            6,
            f"revocation → refusal, Redis, median of {n}",
            median(redis_ms),
            "ms",
            Target("<=", 50),
            note,
        )
        r.add(
            6,
            f"revocation → refusal, Redis, p99 of {n}",
            percentile(redis_ms, 99),
            "ms",
            Target("<=", 250),
        )
        r.add(
            6,
            f"revocation → refusal, polling, median of {n}",
            median(poll_ms),
            "ms",
            note="RESOURCE_REVOCATION_POLL_INTERVAL default",
        )
        r.add(6, f"revocation → refusal, polling, p99 of {n}", percentile(poll_ms, 99), "ms")

    # ===========================================================================================
    # Scenario 7: timing parity

    def scenario_parity(self) -> None:
        p, r = self.plan, self.report
        assert self.auth is not None
        url = f"{self.auth.url}/token"
        known = seed.username(self.seed, 1)
        wrong: list[float] = []
        unknown: list[float] = []
        statuses: dict[int, int] = {}
        print(
            f"  scenario 7: {p.parity_samples} wrong passwords and {p.parity_samples} unknown users, "
            "alternating",
            flush=True,
        )
        with httpx.Client(timeout=60) as http:

            def attempt(username: str) -> float:
                data = {
                    "grant_type": "password",
                    "client_id": "web",
                    "username": username,
                    "password": "not the password 0123",
                }
                start = time.perf_counter()
                response = http.post(url, data=data)
                elapsed = time.perf_counter() - start
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                return elapsed * 1000

            for _ in range(2):  # warm-up
                attempt(known)
                attempt(f"nobody{os.urandom(4).hex()}")
            statuses.clear()
            for i in range(p.parity_samples):
                pair = [(wrong, known), (unknown, f"nobody{os.urandom(4).hex()}")]
                if i % 2:
                    pair.reverse()
                for bucket, name in pair:
                    bucket.append(attempt(name))
        note = ", ".join(f"{v} x {k}" for k, v in sorted(statuses.items()))
        r.add(
            7,
            "unknown user / wrong password, median latency",
            div(median(unknown), median(wrong)),
            "x",
            Target("between", (0.9, 1.1)),
            note=f"statuses: {note}",
        )
        r.add(7, "wrong password, median", median(wrong), "ms")
        r.add(7, "unknown user, median", median(unknown), "ms")

    # ===========================================================================================
    # Scenario 9: the authorization code round trip

    def scenario_code(self) -> None:
        """GET /authorize with a signed-in browser session (no password hash: the person signed
        in once, before the clock starts), the 302 with the code, then the code exchange at
        /token with PKCE: what an app pays for each sign-in once its user is signed in at the
        auth server. Sequential, one at a time: a latency, not a throughput."""
        p, r = self.plan, self.report
        assert self.auth is not None
        issuer = self.auth.url
        samples = 60 if p.quick else 400
        print(f"  scenario 9: {samples} round trips /authorize -> code -> /token", flush=True)
        timings: list[float] = []
        statuses: dict[str, int] = {}
        with httpx.Client(timeout=30, follow_redirects=False) as browser:
            page = browser.get(f"{issuer}/login")
            fields = dict(
                re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text)
            )
            signed_in = browser.post(
                f"{issuer}/login",
                data=fields | {"username": "benchlogin", "password": PASSWORD},
            )
            if signed_in.status_code != 303:
                raise BenchmarkBroken(f"hosted sign-in failed: {signed_in.status_code}")
            for i in range(samples + 5):
                verifier = base64_url(os.urandom(32))
                challenge = base64_url(hashlib.sha256(verifier.encode()).digest())
                params = {
                    "response_type": "code",
                    "client_id": CODE_CLIENT,
                    "redirect_uri": CODE_REDIRECT,
                    "scope": "openid notes:read",
                    "state": "s",
                    "nonce": "n",
                    "code_challenge": challenge,
                    "code_challenge_method": "S256",
                }
                start = time.perf_counter()
                answer = browser.get(f"{issuer}/authorize", params=params)
                location = answer.headers.get("location", "")
                code = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query).get("code")
                if answer.status_code != 302 or not code:
                    statuses[f"authorize {answer.status_code}"] = (
                        statuses.get(f"authorize {answer.status_code}", 0) + 1
                    )
                    continue
                token = browser.post(
                    f"{issuer}/token",
                    data={
                        "grant_type": "authorization_code",
                        "code": code[0],
                        "redirect_uri": CODE_REDIRECT,
                        "code_verifier": verifier,
                        "client_id": CODE_CLIENT,
                    },
                )
                elapsed = (time.perf_counter() - start) * 1000
                statuses[f"token {token.status_code}"] = (
                    statuses.get(f"token {token.status_code}", 0) + 1
                )
                if token.status_code == 200 and i >= 5:  # the first five warm up
                    timings.append(elapsed)
        note = ", ".join(f"{v} x {k}" for k, v in sorted(statuses.items()))
        r.add(
            9,
            "/authorize -> code -> /token, median",
            median(timings),
            "ms",
            Target("<=", 15),
            note=f"{len(timings)} round trips; {note}",
        )
        r.add(9, "/authorize -> code -> /token, p95", percentile(timings, 95), "ms")

    # ===========================================================================================
    # Scenario 8: cold start, memory

    def scenario_cold_start(self) -> None:
        h, p, r = self.h, self.plan, self.report
        auth_times, res_times = [], []
        fresh_auth_rss, fresh_res_rss = [], []
        res_env = self.resource_env_for(self.issuer, "resource-cold")
        h.cli("resource-server", ["migrate"], res_env)
        for _ in range(p.cold_starts):
            h.settle()
            server = h.serve("auth-cold", "auth-server", self.auth_env)
            assert server.ready_after is not None
            auth_times.append(server.ready_after)
            fresh_auth_rss += server.rss_per_worker_mib()
            h.stop(server)
            h.settle()
            server = h.serve("resource-cold", "resource-server", res_env)
            assert server.ready_after is not None
            res_times.append(server.ready_after)
            fresh_res_rss += server.rss_per_worker_mib()
            h.stop(server)
        r.add(
            8,
            "cold start to /readyz, auth server (PostgreSQL)",
            median(auth_times),
            "s",
            note="`serve` spawned → first 200 from /readyz; schema already current",
        )
        r.add(8, "cold start to /readyz, resource server (SQLite)", median(res_times), "s")
        r.add(8, "RSS per worker, auth server, just started", median(fresh_auth_rss), "MiB")
        r.add(8, "RSS per worker, resource server, just started", median(fresh_res_rss), "MiB")
        for label, values in self.rss.items():
            if values:
                r.add(
                    8,
                    f"RSS per worker, {label}",
                    max(values),
                    "MiB",
                    note=""
                    if len(values) == 1
                    else "max of " + ", ".join(f"{v:.0f}" for v in values),
                )


# -------------------------------------------------------------------------------------------------
# helpers


def p99_or_none(runs: list[WrkResult]) -> float | None:
    """Median over runs of the p99 latency; None (n/a) if any run got no response at all."""
    if not runs or any(x.requests == 0 for x in runs):
        return None
    return median([x.p("p99") for x in runs])


def div(a: float, b: float) -> float:
    """a / b, NaN (shown as n/a, never met) when b is 0: a load that got nothing through."""
    return a / b if b else math.nan


def resource_serve_defaults(workdir: Path) -> dict[str, str]:
    """How `resource-server serve` starts uvicorn by default (log level, access log), read from
    its settings class in a clean environment, as the reference apps' BENCH_* variables."""
    from tests.e2e.servers import base_env

    probe = (
        "import json\n"
        "from resource_server.settings import ResourceSettings as S\n"
        "s = S(_env_file=None)\n"
        "print(json.dumps({'log_level': str(s.log_level),"
        " 'access_log': getattr(s, 'access_log', None)}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env=base_env(),
        cwd=workdir,
        capture_output=True,
        text=True,
        check=False,
    )
    out: dict[str, str] = {"BENCH_LOG_LEVEL": "INFO"}
    with contextlib.suppress(Exception):
        values = json.loads(done.stdout.strip().splitlines()[-1])
        out["BENCH_LOG_LEVEL"] = values["log_level"]
        if values.get("access_log") is not None:
            out["BENCH_ACCESS_LOG"] = "1" if values["access_log"] else "0"
    return out


def refresh_sync(auth_url: str, token: str) -> dict[str, Any]:
    response = httpx.post(
        f"{auth_url}/token",
        data={"grant_type": "refresh_token", "client_id": "web", "refresh_token": token},
        timeout=30,
    )
    if response.status_code != 200:
        raise BenchmarkBroken(
            f"refresh at {auth_url} failed: {response.status_code} {response.text}"
        )
    body: dict[str, Any] = response.json()
    return body


async def refresh_async(http: httpx.AsyncClient, auth_url: str, token: str) -> dict[str, Any]:
    response = await http.post(
        f"{auth_url}/token",
        data={"grant_type": "refresh_token", "client_id": "web", "refresh_token": token},
    )
    if response.status_code != 200:
        raise BenchmarkBroken(
            f"refresh at {auth_url} failed: {response.status_code} {response.text}"
        )
    body: dict[str, Any] = response.json()
    return body


def create_note(resource_url: str, headers: dict[str, str]) -> str:
    response = httpx.post(
        f"{resource_url}/notes",
        json={"title": "benchmark", "body": "a note of ordinary size " * 8},
        headers=headers,
        timeout=30,
    )
    if response.status_code != 201:
        raise BenchmarkBroken(f"POST /notes failed: {response.status_code} {response.text}")
    return str(response.json()["id"])


def result_from_samples(samples: list[tuple[int, float, bool]], elapsed: float) -> WrkResult:
    """A WrkResult from (status, seconds, has Retry-After) samples; status 0 = no answer."""
    answered = [x for x in samples if x[0] != 0]
    latencies = [t * 1000 for _, t, _ in answered]
    statuses: dict[str, int] = {}
    for status, _, _ in answered:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    extra = {
        f"retry_after_{code}": sum(1 for s, _, r in answered if s == code and r)
        for code in (429, 503)
    }
    return WrkResult(
        requests=len(answered),
        duration_s=elapsed,
        latency_ms={
            "min": min(latencies, default=math.nan),
            "max": max(latencies, default=math.nan),
            "mean": sum(latencies) / len(latencies) if latencies else math.nan,
            **{
                name: percentile(latencies, q)
                for name, q in (("p50", 50), ("p75", 75), ("p90", 90), ("p99", 99), ("p999", 99.9))
            },
        },
        errors={
            "connect": 0,
            "read": 0,
            "write": 0,
            "status": sum(1 for s, _, _ in answered if s >= 400),
            "timeout": len(samples) - len(answered),
        },
        statuses=statuses,
        extra=extra,
    )


async def closed_loop_logins(
    token_url: str, users: list[str], connections: int, duration: float, wait: float
) -> WrkResult:
    """`connections` clients logging in back to back (password grant) for `duration` seconds;
    the logins still running then are awaited, and the rate is taken over the whole time."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    samples: list[tuple[int, float, bool]] = []
    async with httpx.AsyncClient(timeout=wait, limits=limits) as http:
        start = time.perf_counter()
        stop_at = start + duration

        async def client(i: int) -> None:
            n = i
            while time.perf_counter() < stop_at:
                data = {
                    "grant_type": "password",
                    "client_id": "web",
                    "username": users[n % len(users)],
                    "password": PASSWORD,
                }
                n += connections
                sent = time.perf_counter()
                try:
                    response = await http.post(token_url, data=data)
                except httpx.HTTPError:
                    samples.append((0, time.perf_counter() - sent, False))
                    continue
                samples.append(
                    (
                        response.status_code,
                        time.perf_counter() - sent,
                        "retry-after" in response.headers,
                    )
                )

        await asyncio.gather(*(client(i) for i in range(connections)))
        elapsed = time.perf_counter() - start
    return result_from_samples(samples, elapsed)


async def login_burst(
    token_url: str, users: list[str], count: int, wait: float
) -> list[tuple[int, float, bool]]:
    """`count` password logins sent at once: (status, seconds, has Retry-After) for each;
    status 0 when no answer came within `wait` seconds."""
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(timeout=wait, limits=limits) as http:

        async def one(i: int) -> tuple[int, float, bool]:
            data = {
                "grant_type": "password",
                "client_id": "web",
                "username": users[i % len(users)],
                "password": PASSWORD,
            }
            start = time.perf_counter()
            try:
                response = await http.post(token_url, data=data)
            except httpx.HTTPError:
                return 0, time.perf_counter() - start, False
            elapsed = time.perf_counter() - start
            return response.status_code, elapsed, "retry-after" in response.headers

        return list(await asyncio.gather(*(one(i) for i in range(count))))


METRIC = re.compile(r"^revocation_events_applied_total(?:\{[^}]*\})?\s+([0-9.eE+]+)\s*$", re.M)


def wait_denylist(
    server: Server, expected: int, marker_token: str, timeout: float = 120
) -> tuple[bool, int, float]:
    """Wait until the resource server refuses `marker_token`, whose session the feed's last
    entry ends (entries are read in order); also read the applied count from /metrics."""
    started = time.monotonic()
    headers = {"Authorization": f"Bearer {marker_token}"}
    with httpx.Client(timeout=10) as http:
        while time.monotonic() - started < timeout:
            if http.get(f"{server.url}/me", headers=headers).status_code == 401:
                waited = time.monotonic() - server.started_at
                seen = 0
                for _ in range(20):  # the counter is bumped after the page's events are applied
                    text = http.get(f"{server.url}/metrics").text
                    seen = int(sum(float(v) for v in METRIC.findall(text)))
                    if seen >= expected or not seen:
                        break
                    time.sleep(0.25)
                return True, seen, waited
            time.sleep(0.1)
    return False, 0, time.monotonic() - started


async def revocation_trials(
    auth_url: str,
    resource_url: str,
    pairs: list[tuple[str, str]],
    concurrency: int,
    check_every: float,
    jitter: float,
) -> list[float]:
    """For each (access, refresh) pair: the access token works; revoke the refresh token (which
    ends the session); then time from /revoke's response to the first 401 at the resource server."""
    sem = asyncio.Semaphore(concurrency)
    rng = random.Random(2)
    limits = httpx.Limits(max_connections=2 * concurrency + 2)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:

        async def trial(access: str, refresh_token: str) -> float:
            async with sem:
                headers = {"Authorization": f"Bearer {access}"}
                first = await http.get(f"{resource_url}/me", headers=headers)
                if first.status_code != 200:
                    raise BenchmarkBroken(
                        f"revocation trial: /me answered {first.status_code} before /revoke"
                    )
                if jitter:
                    await asyncio.sleep(rng.uniform(0, jitter))
                revoked = await http.post(
                    f"{auth_url}/revoke", data={"token": refresh_token, "client_id": "web"}
                )
                t0 = time.perf_counter()
                if revoked.status_code != 200:
                    raise BenchmarkBroken(f"/revoke answered {revoked.status_code}")
                while time.perf_counter() - t0 < 15:
                    response = await http.get(f"{resource_url}/me", headers=headers)
                    if response.status_code == 401:
                        return time.perf_counter() - t0
                    if check_every:
                        await asyncio.sleep(check_every)
                return math.inf

        return list(await asyncio.gather(*(trial(a, rt) for a, rt in pairs)))


# -------------------------------------------------------------------------------------------------
# machine, services, output


def ensure_services() -> None:
    script = REPO / "scripts" / "bench_services.sh"
    if script.exists():
        done = subprocess.run(["bash", str(script)], check=False)
        if done.returncode != 0:
            print("warning: scripts/bench_services.sh failed; trying anyway", file=sys.stderr)


def check_services(harness: Harness) -> None:
    try:
        harness.pg_execute("SELECT 1")
    except Exception as exc:
        raise BenchmarkBroken(
            f"PostgreSQL at {harness.pg_admin_url} is not reachable: {exc}"
        ) from None
    import redis

    client = redis.Redis.from_url(harness.redis_url)
    try:
        client.ping()
    except Exception as exc:
        raise BenchmarkBroken(f"Redis at {harness.redis_url} is not reachable: {exc}") from None
    finally:
        client.close()
    if shutil.which("wrk") is None:
        raise BenchmarkBroken("wrk is not installed (apt-get install -y wrk)")


def machine(harness: Harness) -> dict[str, str]:
    info: dict[str, str] = {}
    cpuinfo = Path("/proc/cpuinfo").read_text()
    models = re.findall(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    info["cpu"] = (
        f"{len(models) or os.cpu_count()} x {models[0] if models else platform.processor()}"
    )
    mhz = re.findall(r"^cpu MHz\s*:\s*(.+)$", cpuinfo, re.M)
    if mhz:
        info["cpu"] += f" ({float(mhz[0]):.0f} MHz)"
    mem = re.search(r"^MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
    if mem:
        info["memory"] = f"{int(mem.group(1)) / 1024 / 1024:.1f} GiB"
    info["kernel"] = platform.release()
    os_release = re.search(r'PRETTY_NAME="([^"]+)"', Path("/etc/os-release").read_text())
    if os_release:
        info["os"] = os_release.group(1)
    info["python"] = platform.python_version()
    with contextlib.suppress(Exception):
        info["postgresql"] = harness.pg_fetch("SHOW server_version")[0][0]
    try:
        import redis

        client = redis.Redis.from_url(harness.redis_url)
        info["redis"] = str(client.info("server").get("redis_version"))
        client.close()
    except Exception:
        pass
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    info["wrk"] = (
        (wrk.stdout or wrk.stderr).splitlines()[0].split(" Copyright")[0]
        if (wrk.stdout or wrk.stderr)
        else ""
    )
    try:
        import fastapi
        import uvicorn

        info["fastapi / uvicorn"] = f"{fastapi.__version__} / {uvicorn.__version__}"
    except Exception:
        pass
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    info["commit"] = commit + (" (with uncommitted changes)" if dirty else "")
    # Which code the servers run: the working tree, or something else first on PYTHONPATH.
    where = subprocess.run(
        [sys.executable, "-c", "import auth_server; print(auth_server.__file__)"],
        cwd=harness.workdir,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if where and not Path(where).resolve().is_relative_to(REPO):
        info["commit"] = f"{commit} (the repository's HEAD; the servers ran the code below)"
        info["application code"] = str(Path(where).parent.parent) + (
            f" ({os.environ['BENCH_CODE_NOTE']})" if os.environ.get("BENCH_CODE_NOTE") else ""
        )
    return info


SELECTABLE: dict[str, tuple[int, ...]] = {
    "verification": (1, 2),
    "tokens": (3,),
    "storm": (4,),
    "revocation": (6,),
    "parity": (7,),
    "code": (9,),
    "coldstart": (8,),
    "growth": (5,),
}


def base64_url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (< 2 min); prints only")
    parser.add_argument("--rounds", type=int, help="rounds of every interleaved comparison")
    parser.add_argument("--duration", type=int, help="seconds per wrk run")
    parser.add_argument(
        "--only",
        help="comma-separated: " + ",".join(SELECTABLE) + " (partial runs never write docs/)",
    )
    parser.add_argument(
        "--no-services",
        action="store_true",
        help="don't run scripts/bench_services.sh (wrk, PostgreSQL, Redis)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    parser.add_argument("--output", type=Path, help="where to write the Markdown report")
    parser.add_argument(
        "--pg",
        default=os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument(
        "--redis", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    args = parser.parse_args(argv)
    plan = Plan.make(args.quick, args.rounds, args.duration)
    selected = list(SELECTABLE) if not args.only else [s.strip() for s in args.only.split(",")]
    unknown = set(selected) - set(SELECTABLE)
    if unknown:
        parser.error(f"unknown scenario group(s): {', '.join(sorted(unknown))}")
    if not args.no_services:
        ensure_services()
    report = Report(quick=plan.quick)
    started = time.monotonic()
    started_at = dt.datetime.now(dt.UTC)
    harness = Harness(args.pg, args.redis, keep_workdir=args.keep)
    print(
        f"notes-auth benchmark ({'quick' if plan.quick else 'full'}): work directory {harness.workdir}",
        flush=True,
    )
    try:
        with harness:
            check_services(harness)
            report.meta["machine"] = machine(harness)
            bench = Bench(harness, plan, report)
            bench.setup()
            phases: list[tuple[str, Callable[[], None]]] = [
                ("verification", bench.scenario_verification),
                ("tokens", bench.scenario_tokens),
                ("storm", bench.scenario_storm),
                ("revocation", bench.scenario_revocation),
                ("parity", bench.scenario_parity),
                ("code", bench.scenario_code),
                ("coldstart", bench.scenario_cold_start),
            ]
            for name, phase in phases:
                if name in selected:
                    run_phase(report, name, phase, started)
            assert bench.auth is not None
            harness.stop(bench.auth)
            if "growth" in selected:
                run_phase(report, "growth", bench.scenario_growth, started)
            if harness.settle_timeouts:
                report.notes.append(
                    f"{harness.settle_timeouts} measurements started before the previous load's "
                    "backlog had drained (15 s cap)"
                )
            if bench.other_load:
                other = sorted(bench.other_load)
                report.meta["other_load"] = (median(other), other[-1])
                report.notes.append(
                    f"other jobs on the machine used a median {median(other):.0%} (at most "
                    f"{other[-1]:.0%}) of the CPUs during the wrk measurements"
                    + (
                        "; figures are noisier than on an idle machine"
                        if median(other) > 0.1
                        else ""
                    )
                )
    except KeyboardInterrupt:
        print("\ninterrupted: servers stopped, databases dropped", file=sys.stderr)
        return 130
    except BenchmarkBroken as exc:
        print(f"\nbenchmark broken: {exc}", file=sys.stderr)
        return 1
    except Exception:
        traceback.print_exc()
        return 1
    elapsed = time.monotonic() - started
    report.meta["elapsed"] = elapsed
    report.meta["started"] = started_at.strftime("%Y-%m-%d %H:%M UTC")
    report.meta["plan"] = plan
    print()
    print(report.table_text())
    for note in report.notes:
        print(f"note: {note}")
    print(f"total time: {elapsed / 60:.1f} min")
    write_outputs(
        report,
        args.output,
        full=not plan.quick
        and not args.only
        and not args.rounds
        and not args.duration
        and not report.errors,
    )
    for error in report.errors:
        print(f"error: {error}", file=sys.stderr)
    return 1 if report.errors else 0


def run_phase(report: Report, name: str, phase: Callable[[], None], started: float) -> None:
    numbers = ", ".join(str(n) for n in SELECTABLE[name])
    print(
        f"\n== scenario {numbers}: {', '.join(SCENARIOS[n] for n in SELECTABLE[name])} "
        f"(t+{time.monotonic() - started:.0f} s)",
        flush=True,
    )
    try:
        phase()
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        traceback.print_exc()
        report.errors.append(f"scenario {numbers} ({name}) broke: {exc}")


def write_outputs(report: Report, output: Path | None, *, full: bool) -> None:
    from bench.docs import render

    if full:
        md = output or DOCS / "benchmarks.md"
        png = md.with_suffix(".png")
    else:
        SCRATCH.mkdir(parents=True, exist_ok=True)
        md = output or SCRATCH / (
            "benchmarks-quick.md" if report.quick else "benchmarks-partial.md"
        )
        png = md.with_suffix(".png")
    try:
        chart(report, png)
    except Exception as exc:  # the chart is a nicety; the figures are the report
        report.notes.append(f"chart not drawn: {exc}")
    md.parent.mkdir(parents=True, exist_ok=True)
    md.write_text(render(report, png.name))
    # Every figure and per-round number, for whoever wants to compare two runs.
    SCRATCH.mkdir(parents=True, exist_ok=True)
    raw = {
        "meta": report.meta,
        "figures": [dataclasses.asdict(f) for f in report.figures],
        "raw": report.raw,
        "errors": report.errors,
        "notes": report.notes,
    }
    (SCRATCH / ("last-quick.json" if report.quick else "last-full.json")).write_text(
        json.dumps(raw, indent=1, default=str)
    )
    print(f"report written to {md.relative_to(REPO) if md.is_relative_to(REPO) else md}")


if __name__ == "__main__":
    sys.exit(main())
