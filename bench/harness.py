"""Processes, databases and Redis keys the benchmark owns, and their clean-up.

Everything the benchmark starts goes through one `Harness`, which stops it again on the way out:
normal end, an exception, Ctrl-C or SIGTERM. Servers run in their own process group (uvicorn's
`--workers N` children included), so stopping one never touches anything else on the machine.
PostgreSQL databases are created with a unique name per run and dropped at the end; Redis keys
live under a unique prefix and are deleted at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    from tests.e2e.servers import free_port as _free_port

    return _free_port()


def pg_url(base: str, database: str, *, driver: str = "postgresql+asyncpg") -> str:
    """`base` is a libpq-style URL (postgresql://user@host:port/anything); swap the database."""
    rest = base.split("://", 1)[1]
    hostpart = rest.split("/", 1)[0]
    return f"{driver}://{hostpart}/{database}"


# ---------------------------------------------------------------------------------------------
# /proc helpers: CPU idleness, process groups, resident memory


def _cpu_times() -> tuple[int, int]:
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    return idle, sum(parts)


def group_ticks(pgids: set[int]) -> int:
    """CPU time (clock ticks, user + system) of every live process in these process groups."""
    ticks = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None and int(fields[2]) in pgids:
                ticks += int(fields[11]) + int(fields[12])
    return ticks


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm may hold spaces and parentheses: split after the last ')'.
    return raw[raw.rindex(")") + 2 :].split()


def group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is not None and int(fields[2]) == pgid:
            pids.append(int(entry))
    return sorted(pids)


def children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None and int(fields[1]) == pid:
                out.append(int(entry))
    return sorted(out)


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


# ---------------------------------------------------------------------------------------------
# Servers


@dataclass
class Server:
    name: str
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    workers: int = 1
    started_at: float = 0.0
    ready_after: float | None = None  # seconds from spawn to the first 200 at the ready path

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def log(self, tail: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    def worker_pids(self) -> list[int]:
        """The processes that serve requests: uvicorn's children with --workers > 1, otherwise
        the server process itself."""
        if self.workers <= 1:
            return [self.proc.pid]
        pids = [
            p
            for p in children(self.proc.pid)
            if "resource_tracker" not in cmdline(p) and "semaphore_tracker" not in cmdline(p)
        ]
        return pids or [self.proc.pid]

    def rss_per_worker_mib(self) -> list[float]:
        values = [rss_kib(p) for p in self.worker_pids()]
        return [v / 1024 for v in values if v is not None]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 15) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        # Orphaned workers of this group, if any (uvicorn normally reaps them).
        for pid in group_pids(self.proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


class CpuMeter:
    """How busy the machine was during a measurement, and how much of that was ours (our
    servers and our waited-for children such as wrk): the rest is other jobs on the machine."""

    def __init__(self, pgids: set[int]) -> None:
        self.pgids = pgids
        self.mine0 = group_ticks(pgids) + _children_ticks()
        self.idle0, self.total0 = _cpu_times()

    def stop(self) -> float:
        """The share of all CPUs used by anything else (0..1)."""
        mine = group_ticks(self.pgids) + _children_ticks() - self.mine0
        idle, total = _cpu_times()
        elapsed = max(1, total - self.total0)
        busy = 1.0 - (idle - self.idle0) / elapsed
        return max(0.0, busy - max(0, mine) / elapsed)


def _children_ticks() -> int:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return round((usage.ru_utime + usage.ru_stime) * os.sysconf("SC_CLK_TCK"))


class BenchmarkBroken(RuntimeError):
    """The instrument itself failed (not a figure that misses its target)."""


@dataclass
class Harness:
    pg_admin_url: str
    redis_url: str
    keep_workdir: bool = False
    run_id: str = field(default_factory=lambda: os.urandom(3).hex())
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="notes-bench-")))
    servers: list[Server] = field(default_factory=list)
    databases: list[str] = field(default_factory=list)
    settle_timeouts: int = 0

    @property
    def redis_prefix(self) -> str:
        return f"notes-bench-{self.run_id}"

    # -- lifecycle ------------------------------------------------------------------------------

    def __enter__(self) -> Harness:
        self._previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.close()
        finally:
            signal.signal(signal.SIGTERM, self._previous)

    def close(self) -> None:
        # Ignore Ctrl-C while cleaning up, so a second one doesn't leave databases behind.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            from bench.wrk import kill_running

            kill_running()
            for server in reversed(self.servers):
                with contextlib.suppress(Exception):
                    server.stop()
            self.servers.clear()
            for name in reversed(self.databases):
                with contextlib.suppress(Exception):
                    self.pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            self.databases.clear()
            with contextlib.suppress(Exception):
                self.redis_cleanup()
            if not self.keep_workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)
        finally:
            signal.signal(signal.SIGINT, previous)

    # -- PostgreSQL -----------------------------------------------------------------------------

    def pg_execute(self, sql: str, *args: Any, database: str = "postgres") -> Any:
        import asyncpg

        async def run() -> Any:
            conn = await asyncpg.connect(pg_url(self.pg_admin_url, database, driver="postgresql"))
            try:
                return await conn.execute(sql, *args)
            finally:
                await conn.close()

        return asyncio.run(run())

    def pg_fetch(self, sql: str, *args: Any, database: str = "postgres") -> list[Any]:
        import asyncpg

        async def run() -> list[Any]:
            conn = await asyncpg.connect(pg_url(self.pg_admin_url, database, driver="postgresql"))
            try:
                return list(await conn.fetch(sql, *args))
            finally:
                await conn.close()

        return asyncio.run(run())

    def pg_session(self, database: str, fn: Callable[[Any], Awaitable[Any]]) -> Any:
        """Run `await fn(connection)` on one asyncpg connection to `database`."""
        import asyncpg

        async def run() -> Any:
            conn = await asyncpg.connect(pg_url(self.pg_admin_url, database, driver="postgresql"))
            try:
                return await fn(conn)
            finally:
                await conn.close()

        return asyncio.run(run())

    def create_database(self, suffix: str) -> tuple[str, str]:
        """A fresh, empty database; returns (name, SQLAlchemy asyncpg URL)."""
        name = f"notes_bench_{self.run_id}_{suffix}"
        self.databases.append(name)
        self.pg_execute(f'CREATE DATABASE "{name}"')
        return name, pg_url(self.pg_admin_url, name)

    # -- Redis ----------------------------------------------------------------------------------

    def redis_cleanup(self) -> None:
        import redis

        client = redis.Redis.from_url(self.redis_url)
        try:
            batch = []
            for key in client.scan_iter(match=f"{self.redis_prefix}*", count=1000):
                batch.append(key)
                if len(batch) >= 500:
                    client.delete(*batch)
                    batch.clear()
            if batch:
                client.delete(*batch)
        finally:
            client.close()

    # -- processes ------------------------------------------------------------------------------

    def path(self, *parts: str) -> Path:
        p = self.workdir.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def cli(
        self, command: str, args: Sequence[str], env: dict[str, str], stdin: str | None = None
    ) -> str:
        """Run `auth-server ...` / `resource-server ...` to completion; stdout on success."""
        done = subprocess.run(
            [str(BIN / command), *args],
            input=stdin,
            text=True,
            capture_output=True,
            env=env,
            cwd=self.workdir,
            check=False,
            timeout=300,
        )
        if done.returncode != 0:
            raise BenchmarkBroken(
                f"{command} {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}"
            )
        return done.stdout

    def start(
        self,
        name: str,
        argv: Sequence[str],
        env: dict[str, str],
        port: int,
        *,
        workers: int = 1,
        ready_path: str = "/readyz",
        timeout: float = 90,
    ) -> Server:
        log_path = self.path("logs", f"{name}.log")
        log = log_path.open("ab")
        started = time.monotonic()
        proc = subprocess.Popen(
            list(argv),
            env=env,
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: workers are stopped with it
        )
        log.close()
        server = Server(
            name=name,
            url=f"http://127.0.0.1:{port}",
            proc=proc,
            log_path=log_path,
            workers=workers,
            started_at=started,
        )
        self.servers.append(server)
        self.wait_ready(server, ready_path, timeout)
        return server

    def serve(
        self,
        name: str,
        command: str,
        env: dict[str, str],
        *,
        port: int | None = None,
        workers: int = 1,
        extra: Sequence[str] = (),
    ) -> Server:
        """`auth-server serve` / `resource-server serve` exactly as an operator starts them."""
        port = port or free_port()
        argv = [str(BIN / command), "serve", "--host", "127.0.0.1", "--port", str(port)]
        if workers != 1:
            argv += ["--workers", str(workers)]
        return self.start(name, [*argv, *extra], env, port, workers=workers)

    def stop(self, *servers: Server) -> None:
        for server in servers:
            server.stop()
            if server in self.servers:
                self.servers.remove(server)

    def wait_ready(self, server: Server, ready_path: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2) as http:
            while time.monotonic() < deadline:
                if server.proc.poll() is not None:
                    raise BenchmarkBroken(f"{server.name} exited early:\n{server.log()}")
                try:
                    if http.get(f"{server.url}{ready_path}").status_code == 200:
                        server.ready_after = time.monotonic() - server.started_at
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.02)
        raise BenchmarkBroken(f"{server.name} not ready after {timeout}s:\n{server.log()}")

    def meter(self) -> CpuMeter:
        return CpuMeter({s.proc.pid for s in self.servers if s.alive()})

    def settle(self, timeout: float = 15.0, window: float = 0.2) -> None:
        """Between measurements: wait until our own servers are idle again, so the backlog of
        one load (Argon2 hashes still running after wrk stopped) doesn't fall into the next.
        """
        deadline = time.monotonic() + timeout
        pgids = {s.proc.pid for s in self.servers if s.alive()}
        while True:
            mine0, (_, total0) = group_ticks(pgids), _cpu_times()
            time.sleep(window)
            mine1, (_, total1) = group_ticks(pgids), _cpu_times()
            mine = max(0, mine1 - mine0) / max(1, total1 - total0)
            if mine < 0.05 or time.monotonic() > deadline:
                if mine >= 0.05:
                    self.settle_timeouts += 1
                return


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
