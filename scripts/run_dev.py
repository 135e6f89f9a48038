"""`make run`: the whole system on the embedded default (SQLite under var/), until Ctrl-C.

What a newcomer sees: a few lines of progress, then one block that says where to go and how to
log in ("open http://127.0.0.1:8001/ and log in as demo / ..."). The servers run quietly: their
log level is WARNING unless AUTH_LOG_LEVEL or RESOURCE_LOG_LEVEL say otherwise, and internal
traffic (the resource server reading the revocation feed and the keys, health probes, metrics)
never reaches the console, whatever the level. What does reach it is marked with the server it
came from; warnings are yellow and errors red (on a terminal, unless NO_COLOR is set).

The demo user is created on the first run; its password is shown that once (contract §1).
"""

from __future__ import annotations

import collections
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
AUTH_PORT, RESOURCE_PORT = 8000, 8001
AUTH_URL = f"http://{HOST}:{AUTH_PORT}"
RESOURCE_URL = f"http://{HOST}:{RESOURCE_PORT}"
DEMO_USER = "demo"
DEMO_EMAIL = "demo@example.com"
DEMO_MARKER = ROOT / "var" / "demo-user-created"

# Requests the system makes to itself, all the time: never worth a line on the console.
INTERNAL_PATHS = ("/revocations", "/readyz", "/healthz", "/.well-known/", "/metrics")
ACCESS_LINE = re.compile(r'"[A-Z]+ (?P<path>\S+) HTTP/[\d.]+" (?P<status>\d{3})')
ERROR_LINE = re.compile(r"^(ERROR|CRITICAL)\b|^Traceback |\b(ERROR|CRITICAL|Exception|Error):")
WARNING_LINE = re.compile(r"^WARNING\b|\bWARNING\b")


class Style:
    """ANSI colours on a terminal, plain text elsewhere (https://no-color.org)."""

    def __init__(self, stream: IO[str]) -> None:
        self.on = stream.isatty() and not os.environ.get("NO_COLOR")

    def _wrap(self, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.on else text

    def bold(self, text: str) -> str:
        return self._wrap("1", text)

    def dim(self, text: str) -> str:
        return self._wrap("2", text)

    def red(self, text: str) -> str:
        return self._wrap("1;31", text)

    def yellow(self, text: str) -> str:
        return self._wrap("33", text)

    def green(self, text: str) -> str:
        return self._wrap("32", text)


STYLE = Style(sys.stdout)
PRINT_LOCK = threading.Lock()


def say(text: str = "") -> None:
    with PRINT_LOCK:
        print(text, flush=True)


def classify(line: str, in_traceback: bool) -> str:
    """ "internal" (dropped), "error", "warning" or "info"."""
    access = ACCESS_LINE.search(line)
    if access:
        status = int(access["status"])
        if access["path"].startswith(INTERNAL_PATHS) and status < 500:
            return "internal"
        return "error" if status >= 500 else "info"
    if in_traceback and (line.startswith((" ", "\t")) or not line.strip()):
        return "error"
    if ERROR_LINE.search(line):
        return "error"
    if WARNING_LINE.search(line):
        return "warning"
    return "info"


class ServerOutput(threading.Thread):
    """Relays one server's output, filtered and marked, and keeps its last lines for a crash."""

    def __init__(self, name: str, stream: IO[str]) -> None:
        super().__init__(name=f"{name}-output", daemon=True)
        self.label = name
        self.stream = stream
        self.recent: collections.deque[str] = collections.deque(maxlen=30)
        self.errors = 0

    def run(self) -> None:
        in_traceback = False
        for raw in self.stream:
            line = raw.rstrip("\n")
            kind = classify(line, in_traceback)
            in_traceback = kind == "error" and (line.startswith("Traceback") or in_traceback)
            if kind == "internal":
                continue
            self.recent.append(line)
            prefix = STYLE.dim(f"[{self.label}]")
            if kind == "error":
                self.errors += 1
                say(f"{prefix} {STYLE.red(line)}")
            elif kind == "warning":
                say(f"{prefix} {STYLE.yellow(line)}")
            else:
                say(f"{prefix} {line}")


def fail(message: str, details: str = "") -> None:
    say(STYLE.red(f"\n✗ {message}"))
    if details.strip():
        say(details.rstrip())
    raise SystemExit(1)


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def run_quietly(argv: list[str], what: str, env: dict[str, str], stdin: str | None = None) -> str:
    result = subprocess.run(  # noqa: S603
        argv, input=stdin, text=True, capture_output=True, env=env, cwd=ROOT, check=False
    )
    if result.returncode != 0:
        fail(f"Could not {what}:", result.stdout + result.stderr)
    return result.stdout


def wait_ready(name: str, url: str, proc: subprocess.Popen[str], output: ServerOutput) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            output.join(timeout=2)
            fail(f"The {name} stopped while starting (exit code {proc.returncode}).")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    fail(f"The {name} did not become ready within a minute.", "\n".join(output.recent))


def create_demo_user(env: dict[str, str]) -> str | None:
    """The demo user's password when it was created just now; None when it already exists."""
    if DEMO_MARKER.exists():
        return None
    password = secrets.token_urlsafe(12)
    run_quietly(
        [str(BIN / "auth-server"), "users", "create", DEMO_USER, "--email", DEMO_EMAIL],
        "create the demo user",
        env,
        stdin=password + "\n",
    )
    DEMO_MARKER.parent.mkdir(parents=True, exist_ok=True)
    DEMO_MARKER.write_text(DEMO_USER + "\n")
    return password


def start(
    name: str, command: str, port: int, env: dict[str, str]
) -> tuple[subprocess.Popen[str], ServerOutput]:
    proc = subprocess.Popen(  # noqa: S603
        [str(BIN / command), "serve", "--host", HOST, "--port", str(port), "--no-migrate"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        bufsize=1,
    )
    assert proc.stdout is not None
    output = ServerOutput(name, proc.stdout)
    output.start()
    return proc, output


def banner(password: str | None) -> str:
    rule = STYLE.dim("─" * 64)
    page = STYLE.bold(f"{RESOURCE_URL}/")
    if password is not None:
        login = (
            f"  Open {page} and log in as {STYLE.bold(DEMO_USER)} / {STYLE.bold(password)}\n"
            f"  {STYLE.dim('(this password is shown only this once; you can also sign up on the page)')}"
        )
    else:
        login = (
            f"  Open {page} and log in as {STYLE.bold(DEMO_USER)}\n"
            f"  {STYLE.dim('(with the password shown the first time make run ran), or sign up there.')}"
        )
    return "\n".join(
        [
            "",
            rule,
            f"  {STYLE.green('✓')} {STYLE.bold('notes-auth is running.')}",
            "",
            login,
            "",
            f"  Sign-in    {AUTH_URL}/login  {STYLE.dim('(the hosted sign-in every app sends you to)')}",
            f"  OpenID     {AUTH_URL}/.well-known/openid-configuration",
            f"  API docs   auth server  {AUTH_URL}/docs",
            f"             notes API    {RESOURCE_URL}/docs",
            "",
            "  Ctrl-C stops both. Warnings and errors from the servers appear below.",
            rule,
        ]
    )


def main() -> None:
    env = dict(os.environ)
    # Quiet servers: warnings and errors only, unless asked otherwise; unbuffered output, so a
    # line shows when it is written.
    env.setdefault("AUTH_LOG_LEVEL", "WARNING")
    env.setdefault("RESOURCE_LOG_LEVEL", "WARNING")
    env["PYTHONUNBUFFERED"] = "1"
    (ROOT / "var").mkdir(exist_ok=True)

    say("Preparing the databases…")
    run_quietly([str(BIN / "auth-server"), "migrate"], "migrate the auth database", env)
    run_quietly([str(BIN / "resource-server"), "migrate"], "migrate the notes database", env)
    for port in (AUTH_PORT, RESOURCE_PORT):
        if port_in_use(port):
            fail(
                f"Port {port} is already in use on {HOST}.",
                "Another `make run` may still be running: stop it (Ctrl-C) and try again.",
            )

    servers: list[tuple[str, subprocess.Popen[str], ServerOutput]] = []

    def stop() -> None:
        for _name, proc, _output in servers:
            if proc.poll() is None:
                proc.terminate()
        for _name, proc, output in servers:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            output.join(timeout=2)

    def on_sigterm(*_: object) -> None:
        stop()
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with it ignored
    try:
        say("Starting the auth server and the notes API…")
        auth, auth_output = start("auth", "auth-server", AUTH_PORT, env)
        servers.append(("auth server", auth, auth_output))
        wait_ready("auth server", AUTH_URL, auth, auth_output)
        password = create_demo_user(env)
        resource, resource_output = start("notes", "resource-server", RESOURCE_PORT, env)
        servers.append(("notes API", resource, resource_output))
        wait_ready("notes API", RESOURCE_URL, resource, resource_output)
        say(banner(password))

        while all(proc.poll() is None for _name, proc, _output in servers):
            time.sleep(0.5)
        name, proc, output = next(s for s in servers if s[1].poll() is not None)
        output.join(timeout=2)
        fail(
            f"The {name} stopped unexpectedly (exit code {proc.returncode}); stopping the other.",
            "Its last lines:\n" + "\n".join(f"  {line}" for line in output.recent)
            if output.recent
            else "",
        )
    except KeyboardInterrupt:
        say("\nStopping…")
    finally:
        stop()
    say("Stopped.")


if __name__ == "__main__":
    main()
