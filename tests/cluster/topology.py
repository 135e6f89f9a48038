"""The scale-out topology as processes on loopback (issue 12), with handles to break it.

One PostgreSQL (initdb into a temp dir, on a free port) and one Redis of its own, so that stopping
them disturbs nothing else on the machine; two `auth-server serve` and two `resource-server serve`
replicas; nginx in front, round-robin, with the production routing file (deploy/nginx/routes.conf)
included as is:

    client ──HTTP──▶ nginx 127.0.0.1:P ─┬─ /auth/...  (prefix stripped) ──▶ auth A, auth B
                                         └─ /...                         ──▶ resource A, resource B

The issuer is `http://127.0.0.1:P/auth`, as in production (`https://host/auth`), and the resource
replicas reach the auth server through the proxy too (metadata, JWKS, revocation feed, transparent
refresh), so an auth replica dying is invisible to them as well.

Everything started here is a child process of the test and is stopped by `Cluster.stop()`, which
never raises: the fixture calls it on failure too.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import glob
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from tests.e2e.servers import Server, auth_env, free_port, resource_env, wait_ready

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ROUTES_CONF = ROOT / "deploy" / "nginx" / "routes.conf"
# A loopback client address nginx adds to X-Forwarded-For; the auth replicas trust it.
TRUSTED_PROXIES = "127.0.0.1"
# Settings the cluster runs with beyond tests.e2e.servers' defaults (documented in docs/guides/cluster.md).
RESOURCE_POLL_INTERVAL = 1.0
RESOURCE_POLL_INTERVAL_WITH_REDIS = 5.0


def run_sync(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine on a private event loop in another thread (safe inside any caller)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


class MissingTool(RuntimeError):
    """A machine package the cluster needs is not installed."""


def find_nginx() -> str:
    for candidate in (shutil.which("nginx"), "/usr/sbin/nginx", "/usr/local/sbin/nginx"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise MissingTool("nginx is not installed (Debian: apt-get install nginx-light)")


def find_postgres_bin() -> Path:
    """The directory holding initdb/postgres/pg_isready (PATH first, then Debian's layout)."""
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(re.sub(r"\D", "", Path(p).parts[-3]) or 0),
    )
    if versions:
        return Path(versions[-1]).parent
    raise MissingTool("PostgreSQL server binaries (initdb) are not installed")


def find_redis() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    raise MissingTool("redis-server is not installed (Debian: apt-get install redis-server)")


def check_tools() -> None:
    find_nginx()
    find_postgres_bin()
    find_redis()


# -- child processes --------------------------------------------------------------------------


@dataclass
class Child:
    """A child process with its output appended to one log file across restarts."""

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] | None = None
    cwd: Path | None = None
    user: str | None = None
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        try:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                user=self.user,
                start_new_session=True,  # Ctrl-C in `make cluster` reaches us, not the children
            )
        finally:
            log.close()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def send(self, sig: int) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int | None:
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int | None:
        """Signal, wait, and kill if it is still there. Never raises."""
        if self.proc is None:
            return None
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)
            code = self.wait(timeout)
            if code is not None:
                return code
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        return self.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def log_since(self, offset: int) -> str:
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")


class Postgres:
    """A PostgreSQL cluster of our own: initdb into `root`, trust auth, loopback only."""

    def __init__(self, root: Path) -> None:
        self.bin = find_postgres_bin()
        self.root = root / "postgres"
        self.data = self.root / "data"
        self.sockets = self.root / "sockets"
        self.port = free_port()
        # PostgreSQL refuses to run as root: as root, run it as the `postgres` system user.
        self.user: str | None = None
        if os.geteuid() == 0:
            self.user = "postgres"
            pwd.getpwnam(self.user)  # KeyError: no such user; then nothing can start it
        self.child = Child(
            "postgres",
            [
                str(self.bin / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-k",
                str(self.sockets),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=300",
                "-c",
                "shared_buffers=64MB",
            ],
            self.root / "postgres.log",
            user=self.user,
        )

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def dsn(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def init(self) -> None:
        self.data.mkdir(parents=True)
        self.sockets.mkdir(parents=True)
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            for path in (self.root, self.data, self.sockets):
                os.chown(path, entry.pw_uid, entry.pw_gid)
            self.root.chmod(0o755)
        self.child.log_path.touch()
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.child.log_path, entry.pw_uid, entry.pw_gid)
        result = subprocess.run(
            [
                str(self.bin / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            capture_output=True,
            text=True,
            user=self.user,
            check=False,
            timeout=120,
        )
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{result.stdout}\n{result.stderr}")

    def start(self, timeout: float = 30) -> None:
        self.child.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.child.alive:
                raise RuntimeError(f"postgres exited:\n{self.child.log()[-4000:]}")
            ready = subprocess.run(
                [str(self.bin / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)],
                check=False,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"postgres not ready after {timeout}s:\n{self.child.log()[-4000:]}")

    def stop(self, mode: str = "fast", timeout: float = 30) -> None:
        """`fast`: SIGINT (sessions are terminated, a clean checkpoint); `immediate`: SIGQUIT."""
        sig = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}[mode]
        self.child.stop(sig, timeout=timeout)

    def create_databases(self, *names: str) -> None:
        async def create() -> None:
            import asyncpg

            conn = await asyncpg.connect(self.dsn("postgres"))
            try:
                for name in names:
                    await conn.execute(f'CREATE DATABASE "{name}"')
            finally:
                await conn.close()

        run_sync(create)

    def query(self, database: str, sql: str, *args: Any) -> list[dict[str, Any]]:
        async def fetch() -> list[dict[str, Any]]:
            import asyncpg

            conn = await asyncpg.connect(self.dsn(database), timeout=10)
            try:
                return [dict(r) for r in await conn.fetch(sql, *args)]
            finally:
                await conn.close()

        return run_sync(fetch)


class Redis:
    """A Redis of our own on a free loopback port, with no persistence (as in compose)."""

    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.dir = root / "redis"
        self.dir.mkdir(parents=True)
        self.child = Child(
            "redis",
            [
                find_redis(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
            ],
            self.dir / "redis.log",
        )

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> Any:
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)

    def start(self, timeout: float = 15) -> None:
        self.child.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.child.alive:
                raise RuntimeError(f"redis exited:\n{self.child.log()[-4000:]}")
            client = self.client()
            try:
                if client.ping():
                    return
            except Exception:
                pass
            finally:
                client.close()
            time.sleep(0.05)
        raise RuntimeError(f"redis not ready after {timeout}s")

    def stop(self) -> None:
        self.child.stop(signal.SIGTERM, timeout=10)

    def subscribers(self, channel: str) -> int:
        client = self.client()
        try:
            return int(dict(client.pubsub_numsub(channel)).get(channel.encode(), 0))
        finally:
            client.close()


@dataclass
class Replica:
    """One `auth-server serve` or `resource-server serve` process on a fixed loopback port."""

    name: str
    command: str  # auth-server | resource-server
    port: int
    env: dict[str, str]
    workdir: Path
    workers: int = 1
    child: Child = field(init=False)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.child = Child(
            self.name,
            [
                str(BIN / self.command),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
                "--no-migrate",
            ],
            self.workdir / f"{self.name}.log",
            env=self.env,
            cwd=self.workdir,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.child.pid

    def start(self, timeout: float = 60) -> None:
        self.child.start()
        assert self.child.proc is not None
        wait_ready(Server(self.name, self.url, self.child.proc, self.child.log_path), timeout)

    def log(self) -> str:
        return self.child.log()


class Nginx:
    """nginx as a child process (`daemon off`), its config, pid, logs and temp files in `root`."""

    def __init__(self, root: Path, port: int) -> None:
        self.binary = find_nginx()
        self.root = root / "nginx"
        self.root.mkdir(parents=True)
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.root / sub).mkdir()
            # As root, nginx's workers run as `nobody`: they write the buffering temp files.
            (self.root / sub).chmod(0o777)
        self.root.chmod(0o755)
        self.port = port
        self.conf = self.root / "nginx.conf"
        self.error_log = self.root / "error.log"
        self.access_log = self.root / "access.log"
        self.child = Child(
            "nginx",
            [self.binary, "-p", str(self.root), "-c", str(self.conf), "-e", str(self.error_log)],
            self.root / "nginx.out",
        )
        self.auth_upstreams: dict[int, bool] = {}
        self.resource_upstreams: dict[int, bool] = {}

    def render(self) -> str:
        def servers(ports: dict[int, bool]) -> str:
            return "\n".join(
                f"        server 127.0.0.1:{port} max_fails=3 fail_timeout=5s{' down' if down else ''};"
                for port, down in ports.items()
            )

        return f"""# Generated by tests/cluster/topology.py: the production routes on loopback, plain HTTP.
daemon off;
master_process on;
worker_processes 1;
pid {self.root}/nginx.pid;
error_log {self.error_log} notice;
events {{ worker_connections 2048; }}
http {{
    log_format cluster '$msec $request_method $uri $status $upstream_addr $upstream_status $request_time';
    access_log {self.access_log} cluster;
    client_body_temp_path {self.root}/body;
    proxy_temp_path {self.root}/proxy;
    fastcgi_temp_path {self.root}/fastcgi;
    uwsgi_temp_path {self.root}/uwsgi;
    scgi_temp_path {self.root}/scgi;
    upstream notes_auth {{
{servers(self.auth_upstreams)}
        keepalive 16;
        keepalive_timeout 4s;  # below uvicorn's 5 s: nginx never reuses one it is closing
    }}
    upstream notes_resource {{
{servers(self.resource_upstreams)}
        keepalive 16;
        keepalive_timeout 4s;
    }}
    server {{
        listen 127.0.0.1:{self.port};
        server_name localhost;
        include {ROUTES_CONF};
    }}
}}
"""

    def write(self) -> None:
        self.conf.write_text(self.render())

    def test_config(self) -> None:
        result = subprocess.run(
            [*self.child.argv, "-t", "-q"], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"nginx -t failed:\n{result.stderr}\n{self.conf.read_text()}")

    def start(self, timeout: float = 15) -> None:
        self.write()
        self.test_config()
        self.child.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.child.alive:
                raise RuntimeError(f"nginx exited:\n{self.error_log.read_text(errors='replace')}")
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/auth/healthz", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("nginx did not start listening")

    def _reloads(self) -> int:
        text = self.error_log.read_text(errors="replace") if self.error_log.exists() else ""
        return text.count("reconfiguring")

    def reload(self, timeout: float = 10) -> None:
        """Apply the config (SIGHUP): new workers take it, old ones finish what they hold."""
        self.write()
        self.test_config()
        before = self._reloads()
        self.child.send(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while self._reloads() == before and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)  # the new worker is up and accepting

    def set_down(self, kind: str, port: int, down: bool) -> None:
        ports = self.auth_upstreams if kind == "auth" else self.resource_upstreams
        ports[port] = down
        self.reload()

    def access_lines(self) -> list[str]:
        if not self.access_log.exists():
            return []
        return self.access_log.read_text(errors="replace").splitlines()

    def stop(self) -> None:
        self.child.stop(signal.SIGQUIT, timeout=10)  # graceful


# -- the whole topology ------------------------------------------------------------------------


class Cluster:
    def __init__(
        self,
        root: Path,
        *,
        auth_replicas: int = 2,
        resource_replicas: int = 2,
        fast_hashing: bool = True,
    ) -> None:
        check_tools()
        self.root = root
        if os.geteuid() == 0:
            # PostgreSQL (as `postgres`) and nginx's workers (as `nobody`) must reach their dirs.
            root.chmod(0o711)
        self.postgres = Postgres(root)
        self.redis = Redis(root)
        self.proxy_port = free_port()
        self.nginx = Nginx(root, self.proxy_port)
        self.proxy_url = f"http://127.0.0.1:{self.proxy_port}"
        self.issuer = f"{self.proxy_url}/auth"
        self.auth_env = auth_env(
            self.issuer, self.postgres.url("auth"), root / "auth-var", fast_hashing=fast_hashing
        ) | {
            "AUTH_REDIS_URL": self.redis.url,
            "AUTH_TRUSTED_PROXIES": TRUSTED_PROXIES,
            "AUTH_CORS_ORIGINS": self.proxy_url,
        }
        self.resource_env_base = resource_env(
            self.issuer, self.postgres.url("resource"), root / "resource-var"
        ) | {
            "RESOURCE_REDIS_URL": self.redis.url,
            "RESOURCE_REVOCATION_POLL_INTERVAL": str(RESOURCE_POLL_INTERVAL),
            "RESOURCE_REVOCATION_POLL_INTERVAL_WITH_REDIS": str(RESOURCE_POLL_INTERVAL_WITH_REDIS),
            "RESOURCE_CORS_ORIGINS": self.proxy_url,
        }
        letters = "abcdefgh"
        self.auth = [
            Replica(f"auth-{letters[i]}", "auth-server", free_port(), self.auth_env, root / "auth")
            for i in range(auth_replicas)
        ]
        self.resource = [
            Replica(
                f"resource-{letters[i]}",
                "resource-server",
                free_port(),
                # Each replica keeps its own last good JWKS and denylist on disk.
                self.resource_env_base
                | {"RESOURCE_VAR_DIR": str(root / f"resource-var-{letters[i]}")},
                root / "resource",
            )
            for i in range(resource_replicas)
        ]
        self.nginx.auth_upstreams = {r.port: False for r in self.auth}
        self.nginx.resource_upstreams = {r.port: False for r in self.resource}

    @property
    def replicas(self) -> list[Replica]:
        return [*self.auth, *self.resource]

    def start(self) -> None:
        self.postgres.init()
        self.postgres.start()
        self.postgres.create_databases("auth", "resource")
        self.redis.start()
        # The one-shot migrate of compose and of the k8s Job; the replicas run --no-migrate.
        self.run("auth-server", "migrate")
        self.run("resource-server", "migrate")
        self.nginx.start()
        for replica in self.auth:  # the first creates the signing keys
            replica.start()
        for replica in self.resource:  # they fetch the JWKS through the proxy
            replica.start()

    def run(
        self, command: str, *args: str, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = self.auth_env if command == "auth-server" else self.resource_env_base
        return subprocess.run(
            [str(BIN / command), *args],
            input=stdin,
            env=env,
            cwd=self.root,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )

    def stop(self) -> None:
        """Stop everything started, in reverse order. Never raises."""
        for replica in reversed(self.replicas):
            with contextlib.suppress(Exception):
                replica.child.stop(signal.SIGTERM, timeout=10)
        for part in (self.nginx, self.redis, self.postgres):
            with contextlib.suppress(Exception):
                part.stop()

    @contextlib.contextmanager
    def running(self) -> Iterator[Cluster]:
        try:
            self.start()
            yield self
        finally:
            self.stop()

    # -- faults ----------------------------------------------------------------------------

    def kill(self, replica: Replica) -> None:
        replica.child.send(signal.SIGKILL)
        replica.child.wait(10)

    def restart_gracefully(self, replica: Replica, drain: float = 0.5) -> tuple[int | None, str]:
        """A rolling-restart step: out of the proxy, SIGTERM (drains), start, back in.

        Returns the exit status and what the process logged from the SIGTERM on."""
        kind = "auth" if replica in self.auth else "resource"
        self.nginx.set_down(kind, replica.port, True)
        time.sleep(drain)
        offset = replica.child.log_size()
        code = replica.child.stop(signal.SIGTERM, timeout=30)
        shutdown_log = replica.child.log_since(offset)
        replica.start()
        self.nginx.set_down(kind, replica.port, False)
        return code, shutdown_log

    # -- diagnostics -----------------------------------------------------------------------

    def log_offsets(self) -> dict[str, int]:
        return {r.name: r.child.log_size() for r in self.replicas}

    def tracebacks_since(self, offsets: dict[str, int]) -> dict[str, list[str]]:
        """Each replica's tracebacks logged since `offsets`, as text blocks."""
        found: dict[str, list[str]] = {}
        for replica in self.replicas:
            text = replica.child.log_since(offsets.get(replica.name, 0))
            blocks = extract_tracebacks(text)
            if blocks:
                found[replica.name] = blocks
        return found


def extract_tracebacks(text: str) -> list[str]:
    """Blocks from a log that start at 'Traceback' (with the line before it) and end at the
    exception line."""
    lines = text.splitlines()
    blocks: list[str] = []
    i = 0
    while i < len(lines):
        if lines[i].startswith("Traceback (most recent call last)"):
            start = max(0, i - 1)
            j = i + 1
            while j < len(lines) and (lines[j].startswith((" ", "\t")) or not lines[j].strip()):
                j += 1
            # chained exceptions: "The above exception..." / "During handling..." continue it
            while (
                j + 2 < len(lines)
                and lines[j + 1] == ""
                and lines[j + 2].startswith(("The above exception", "During handling"))
            ):
                j += 3
                while j < len(lines) and (
                    lines[j].startswith((" ", "\t", "Traceback")) or not lines[j].strip()
                ):
                    j += 1
            blocks.append("\n".join(lines[start : j + 1]))
            i = j + 1
        else:
            i += 1
    return blocks


def exception_lines(blocks: list[str]) -> dict[str, int]:
    """'what was logged -> the exception that escaped', counted: the line logged before each
    traceback (e.g. `unhandled error on POST /notes`, `could not reload the signing keys`) and
    the outermost exception's `Class: message` line."""
    out: dict[str, int] = {}
    for block in blocks:
        lines = block.splitlines()
        context = lines[0] if not lines[0].startswith("Traceback") else "(no message)"
        last = [line for line in lines[1:] if line and not line.startswith((" ", "\t"))]
        if last:
            key = f"{context.strip()[:80]} -> {last[-1].strip()[:200]}"
            out[key] = out.get(key, 0) + 1
    return out
