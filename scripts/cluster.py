"""`make cluster`: the scale-out topology of issue 12 as processes on loopback, until Ctrl-C.

Its own PostgreSQL (initdb into a temp dir) and Redis, two auth server replicas and two resource
server replicas, nginx in front with the production routes (deploy/nginx/routes.conf): one
origin, the auth server under /auth. Needs nginx, PostgreSQL's server binaries and redis-server
(Debian: nginx-light, postgresql, redis-server). Everything is removed on exit.

    python -m scripts.cluster            start it, print the URLs and a demo user, wait for Ctrl-C
    python -m scripts.cluster --faults   run the fault test (tests/cluster) and print its report
    python -m scripts.cluster --bench    throughput through the proxy with 1 and with 2 replicas
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.cluster.topology import Cluster, MissingTool, check_tools  # noqa: E402

BENCH_SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))


def _sign_up(cluster: Cluster, username: str, password: str) -> None:
    response = httpx.post(
        f"{cluster.proxy_url}/auth/users",
        json={"username": username, "email": f"{username}@example.com", "password": password},
        timeout=30,
    )
    response.raise_for_status()


def _log_in(cluster: Cluster, username: str, password: str) -> str:
    response = httpx.post(
        f"{cluster.proxy_url}/auth/token",
        data={
            "grant_type": "password",
            "client_id": "web",
            "username": username,
            "password": password,
        },
        timeout=30,
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def serve() -> int:
    root = Path(tempfile.mkdtemp(prefix="notes-auth-cluster-"))
    cluster = Cluster(root)
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    try:
        print("starting PostgreSQL, Redis, nginx and 2 + 2 replicas ...", flush=True)
        cluster.start()
        password = secrets.token_urlsafe(12)
        _sign_up(cluster, "demo", password)
        print(
            f"""
one origin (nginx, round-robin):  {cluster.proxy_url}/            the web page
  auth server (issuer):           {cluster.issuer}
  metadata (RFC 8414):            {cluster.proxy_url}/.well-known/oauth-authorization-server/auth
replicas:  {", ".join(f"{r.name} {r.url}" for r in cluster.replicas)}
PostgreSQL: {cluster.postgres.dsn("auth")} (and /resource)   Redis: {cluster.redis.url}
logs and data: {root}
demo user: username=demo password={password}

Ctrl-C stops everything and removes {root}.""",
            flush=True,
        )
        while not stopping:
            for replica in cluster.replicas:
                if not replica.child.alive:
                    print(f"{replica.name} exited:\n{replica.log()[-2000:]}", file=sys.stderr)
                    return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        print("\nstopping ...", flush=True)
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


def faults() -> int:
    """Run the cluster test; its report goes to the terminal and to var/cluster-report.md."""
    report = ROOT / "var" / "cluster-report.md"
    report.parent.mkdir(exist_ok=True)
    env = os.environ | {"TEST_CLUSTER": "1", "CLUSTER_REPORT": str(report)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/cluster", "-rxXf", "-p", "no:cacheprovider"],
        cwd=ROOT,
        env=env,
        check=False,
    )
    if report.exists():
        print(f"\nthe report is also in {report.relative_to(ROOT)}")
    return result.returncode


def _wrk(
    url: str, *, connections: int, script: Path | None = None, headers: dict[str, str]
) -> dict[str, float]:
    args = ["wrk", "-t2", f"-c{connections}", f"-d{BENCH_SECONDS}s", "--latency"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    if script is not None:
        args += ["-s", str(script)]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout  # noqa: S603
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise SystemExit(f"{url}: {non2xx.group(1)} non-2xx responses:\n{out}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    assert rate and p50 and p99, out

    def ms(match: re.Match[str]) -> float:
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[match.group(2)]
        return round(float(match.group(1)) * scale, 1)

    return {"rps": float(rate.group(1)), "p50_ms": ms(p50), "p99_ms": ms(p99)}


LOGIN_CONNECTIONS = 8


def _login_script(users: list[str], password: str) -> str:
    """A wrk script whose requests log in as each of `users` in turn."""
    bodies = [
        urlencode(
            {"grant_type": "password", "client_id": "web", "username": user, "password": password}
        )
        for user in users
    ]
    return (
        f"local bodies = {{{', '.join(json.dumps(body) for body in bodies)}}}\n"
        "local n = 0\n"
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n'
        "request = function()\n"
        "  n = n + 1\n"
        "  return wrk.format(nil, nil, nil, bodies[(n % #bodies) + 1])\n"
        "end\n"
    )


def bench() -> int:
    """GET /me (resource replicas) and password logins with production Argon2id costs (auth
    replicas), through nginx, with 1 and with 2 replicas of each service, on this machine."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    results: dict[int, dict[str, dict[str, float]]] = {}
    for replicas in (1, 2):
        root = Path(tempfile.mkdtemp(prefix="notes-auth-bench-"))
        cluster = Cluster(
            root, auth_replicas=replicas, resource_replicas=replicas, fast_hashing=False
        )
        try:
            print(f"{replicas} replica(s) of each service: starting ...", flush=True)
            cluster.start()
            password = "bench passphrase, long enough 42"
            # One account per connection: the login throttle's defaults stay on, and more than
            # AUTH_LOGIN_FAILURE_LIMIT (5) logins of one account from one address in flight at
            # once across replicas may be refused (429) before their passwords are checked (a
            # replica waits only for its own).
            users = [f"bench{i}" for i in range(LOGIN_CONNECTIONS)]
            for user in users:
                _sign_up(cluster, user, password)
            token = _log_in(cluster, users[0], password)
            me = _wrk(
                f"{cluster.proxy_url}/me",
                connections=32,
                headers={"Authorization": f"Bearer {token}"},
            )
            script = root / "login.lua"
            script.write_text(_login_script(users, password))
            logins = _wrk(
                f"{cluster.proxy_url}/auth/token",
                connections=LOGIN_CONNECTIONS,
                script=script,
                headers={},
            )
            results[replicas] = {"GET /me": me, "POST /auth/token (password)": logins}
            print(f"  {json.dumps(results[replicas])}", flush=True)
        finally:
            cluster.stop()
            shutil.rmtree(root, ignore_errors=True)
    cpus = os.cpu_count()
    print(f"\nthrough nginx on one machine ({cpus} CPUs; wrk, nginx, PostgreSQL, Redis and the")
    print("replicas share them), one uvicorn worker per replica, production Argon2id costs:\n")
    print(
        "| endpoint | 1 replica: req/s (p50 / p99 ms) | 2 replicas: req/s (p50 / p99 ms) | ratio |"
    )
    print("|---|---|---|---|")
    for endpoint in results[1]:
        one, two = results[1][endpoint], results[2][endpoint]
        print(
            f"| `{endpoint}` | {one['rps']:,.0f} ({one['p50_ms']} / {one['p99_ms']}) "
            f"| {two['rps']:,.0f} ({two['p50_ms']} / {two['p99_ms']}) "
            f"| {two['rps'] / one['rps']:.2f} |"
        )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="make cluster", description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--faults", action="store_true", help="run the fault test and its report")
    group.add_argument("--bench", action="store_true", help="1 vs 2 replicas, through nginx")
    args = parser.parse_args()
    try:
        check_tools()
    except MissingTool as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.faults:
        return faults()
    if args.bench:
        return bench()
    return serve()


if __name__ == "__main__":
    sys.exit(main())
