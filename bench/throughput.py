"""`make bench`: protected GET /me throughput as a ratio of an unprotected endpoint's, same run.

Starts the auth server and one resource server worker as real processes on loopback, logs in,
then loads `GET /healthz` (unprotected) and `GET /me` (bearer token, verified locally) in turn
with wrk (Debian's `wrk`; installed by `make bench` if missing) or, without wrk, a Python load
generator in separate processes. The target is a ratio of at least 0.85.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.e2e.flows import sign_up_and_log_in
from tests.e2e.servers import auth_env, free_port, resource_env, start_server

DURATION = int(os.environ.get("BENCH_SECONDS", "10"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
TARGET = 0.85


def _wrk(url: str, headers: dict[str, str]) -> float:
    args = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{DURATION}s", "--latency"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise SystemExit(f"{url}: {non2xx.group(1)} non-2xx responses:\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert match, out
    return float(match.group(1))


def _python_worker(args: tuple[str, dict[str, str], float]) -> int:
    url, headers, seconds = args

    async def run() -> int:
        count = 0
        deadline = time.monotonic() + seconds
        async with httpx.AsyncClient(headers=headers) as http:

            async def loop() -> None:
                nonlocal count
                while time.monotonic() < deadline:
                    response = await http.get(url)
                    if response.status_code != 200:
                        raise SystemExit(f"{url}: {response.status_code}")
                    count += 1

            await asyncio.gather(*(loop() for _ in range(8)))
        return count

    return asyncio.run(run())


def _python_load(url: str, headers: dict[str, str]) -> float:
    with Pool(2) as pool:
        counts = pool.map(_python_worker, [(url, headers, float(DURATION))] * 2)
    return sum(counts) / DURATION


def main() -> None:
    measure = _wrk if shutil.which("wrk") else _python_load
    print(
        f"load generator: {'wrk' if measure is _wrk else 'python (install wrk for better numbers)'}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        auth_port, resource_port = free_port(), free_port()
        issuer = f"http://127.0.0.1:{auth_port}"
        # Production Argon2 costs: the benchmark logs in once, then measures verification only.
        auth_db = f"sqlite+aiosqlite:///{workdir / 'auth.db'}"
        env_a = auth_env(issuer, auth_db, workdir / "auth-var", fast_hashing=False)
        env_a["AUTH_ACCESS_TOKEN_TTL"] = "3600"
        resource_db = f"sqlite+aiosqlite:///{workdir / 'resource.db'}"
        env_r = resource_env(issuer, resource_db, workdir / "resource-var")
        env_r["RESOURCE_LOG_LEVEL"] = "WARNING"
        auth = start_server("auth", "auth-server", auth_port, env_a, workdir)
        resource = start_server("resource", "resource-server", resource_port, env_r, workdir)
        try:

            async def login() -> str:
                async with httpx.AsyncClient(timeout=30) as http:
                    return str((await sign_up_and_log_in(http, auth.url))["access_token"])

            token = asyncio.run(login())
            protected = {"Authorization": f"Bearer {token}"}
            measure(f"{resource.url}/healthz", {})  # warm-up
            measure(f"{resource.url}/me", protected)
            unprotected_rps = measure(f"{resource.url}/healthz", {})
            protected_rps = measure(f"{resource.url}/me", protected)
        finally:
            resource.stop()
            auth.stop()
    ratio = protected_rps / unprotected_rps
    result = {
        "unprotected_rps": round(unprotected_rps, 1),
        "protected_rps": round(protected_rps, 1),
        "ratio": round(ratio, 3),
        "target": TARGET,
    }
    print(json.dumps(result, indent=2))
    print(f"protected/unprotected throughput ratio: {ratio:.3f} (target >= {TARGET})")
    if ratio < TARGET:
        sys.exit(1)


if __name__ == "__main__":
    main()
