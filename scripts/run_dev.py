"""`make run`: the whole system on the embedded default (SQLite under var/), until Ctrl-C.

Migrates both databases, starts the auth server (which creates its signing keys if none exist),
creates the demo user once (its password is printed that one time), starts the resource server,
prints the URLs, and stops both on Ctrl-C.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
AUTH_URL = "http://127.0.0.1:8000"
RESOURCE_URL = "http://127.0.0.1:8001"
DEMO_USER = "demo"
DEMO_EMAIL = "demo@example.com"
DEMO_MARKER = ROOT / "var" / "demo-user-created"


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url} exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} did not become ready in {timeout:.0f}s")


def _create_demo_user(env: dict[str, str]) -> None:
    if DEMO_MARKER.exists():
        print(f"demo user: {DEMO_USER} (its password was printed when it was created)")
        return
    password = secrets.token_urlsafe(12)
    result = subprocess.run(  # noqa: S603
        [str(BIN / "auth-server"), "users", "create", DEMO_USER, "--email", DEMO_EMAIL],
        input=password + "\n",
        text=True,
        capture_output=True,
        env=env,
        cwd=ROOT,
        check=False,
    )
    if result.returncode != 0:
        print(f"demo user not created: {result.stderr.strip()}")
        return
    DEMO_MARKER.parent.mkdir(parents=True, exist_ok=True)
    DEMO_MARKER.write_text(DEMO_USER + "\n")
    print(f"demo user created (shown once): username={DEMO_USER} password={password}")


def main() -> None:
    env = dict(os.environ)
    (ROOT / "var").mkdir(exist_ok=True)
    for command in ("auth-server", "resource-server"):
        subprocess.run([str(BIN / command), "migrate"], check=True, cwd=ROOT, env=env)  # noqa: S603

    procs: list[subprocess.Popen[bytes]] = []

    def stop(*_: object) -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()

    signal.signal(signal.SIGTERM, lambda *_: (stop(), sys.exit(0)))
    try:
        auth = subprocess.Popen(  # noqa: S603
            [str(BIN / "auth-server"), "serve", "--port", "8000", "--no-migrate"], cwd=ROOT, env=env
        )
        procs.append(auth)
        _wait_ready(AUTH_URL, auth)
        _create_demo_user(env)
        resource = subprocess.Popen(  # noqa: S603
            [str(BIN / "resource-server"), "serve", "--port", "8001", "--no-migrate"],
            cwd=ROOT,
            env=env,
        )
        procs.append(resource)
        _wait_ready(RESOURCE_URL, resource)
        print(
            "\nnotes-auth is running:\n"
            f"  web page:                 {RESOURCE_URL}/\n"
            f"  auth server API docs:     {AUTH_URL}/docs\n"
            f"  resource server API docs: {RESOURCE_URL}/docs\n"
            f"  JWKS:                     {AUTH_URL}/.well-known/jwks.json\n"
            "Press Ctrl-C to stop both.\n",
            flush=True,
        )
        while all(proc.poll() is None for proc in procs):
            time.sleep(0.5)
        print("a server exited; stopping the other", file=sys.stderr)
        raise SystemExit(1)
    except KeyboardInterrupt:
        print("\nstopping")
    finally:
        stop()


if __name__ == "__main__":
    main()
