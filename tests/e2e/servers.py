"""Real servers on loopback for end-to-end tests: `auth-server serve` and `resource-server serve`
run as subprocesses on free 127.0.0.1 ports, exactly as an operator would start them."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.databases import TEST_KEK

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    name: str
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class LiveSystem:
    auth: Server
    resource: Server
    auth_env: dict[str, str]
    resource_env: dict[str, str]
    servers: list[Server] = field(default_factory=list)

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "auth-server"), *args],
            input=stdin,
            text=True,
            capture_output=True,
            env=self.auth_env,
            check=False,
            timeout=60,
        )


def start_server(name: str, command: str, port: int, env: dict[str, str], workdir: Path) -> Server:
    return start_process(
        name,
        [str(BIN / command), "serve", "--host", "127.0.0.1", "--port", str(port)],
        port,
        env,
        workdir,
    )


def start_process(
    name: str,
    argv: list[str],
    port: int,
    env: dict[str, str],
    workdir: Path,
    *,
    ready_path: str = "/readyz",
    tls_verify: str | None = None,
) -> Server:
    """Start `argv` (a server listening on 127.0.0.1:`port`) and wait until `ready_path` is 200.
    With `tls_verify` (a CA file), the server speaks HTTPS."""
    log_path = workdir / f"{name}.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(argv, env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
    scheme = "https" if tls_verify else "http"
    server = Server(name=name, url=f"{scheme}://127.0.0.1:{port}", proc=proc, log_path=log_path)
    verify: ssl.SSLContext | bool = True
    if tls_verify:
        verify = ssl.create_default_context(cafile=tls_verify)
    wait_ready(server, path=ready_path, verify=verify)
    return server


def wait_ready(
    server: Server,
    timeout: float = 60,
    *,
    path: str = "/readyz",
    verify: ssl.SSLContext | bool = True,
) -> None:
    deadline = time.monotonic() + timeout
    # One client for every poll (a client builds a TLS context: 20 ms of CPU each).
    with httpx.Client(timeout=2, verify=verify) as client:
        while time.monotonic() < deadline:
            if server.proc.poll() is not None:
                raise RuntimeError(f"{server.name} exited early:\n{server.log()}")
            try:
                if client.get(f"{server.url}{path}").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"{server.name} not ready after {timeout}s:\n{server.log()}")


def base_env() -> dict[str, str]:
    # Nothing from the developer's own AUTH_*/RESOURCE_* environment leaks into the servers.
    return {k: v for k, v in os.environ.items() if not k.startswith(("AUTH_", "RESOURCE_"))}


def auth_env(
    issuer: str, database_url: str, var_dir: Path, *, fast_hashing: bool = True
) -> dict[str, str]:
    """Environment of an `auth-server serve` process for tests and benchmarks."""
    env = base_env() | {
        "AUTH_ENVIRONMENT": "test",
        "AUTH_DATABASE_URL": database_url,
        "AUTH_ISSUER": issuer,
        "AUTH_KEY_ENCRYPTION_KEY": TEST_KEK,
        "AUTH_VAR_DIR": str(var_dir),
    }
    if fast_hashing:
        env |= {
            "AUTH_PASSWORD_HASH_TIME_COST": "1",
            "AUTH_PASSWORD_HASH_MEMORY_COST": "1024",
            "AUTH_PASSWORD_HASH_PARALLELISM": "1",
        }
    return env


def resource_env(issuer: str, database_url: str, var_dir: Path) -> dict[str, str]:
    """Environment of a `resource-server serve` process for tests and benchmarks."""
    return base_env() | {
        "RESOURCE_ENVIRONMENT": "test",
        "RESOURCE_DATABASE_URL": database_url,
        "RESOURCE_AUTH_SERVER_URL": issuer,
        "RESOURCE_VAR_DIR": str(var_dir),
    }
