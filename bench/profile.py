"""Profile one server under wrk load with pyinstrument: where does a request's time go?

    python -m bench.profile me        # resource server, GET /me with a valid token
    python -m bench.profile notes     # resource server, GET /notes/{id} (SQLite)
    python -m bench.profile refresh   # auth server, refresh_token grant (PostgreSQL)
    python -m bench.profile healthz   # resource server, GET /healthz (no authentication)
    python -m bench.profile bare      # the bare FastAPI reference app (the ceiling)

The server runs as `serve` does (one worker) inside pyinstrument; wrk drives it for --seconds.
Writes var/bench/profile-<target>.{html,txt,pyisession} and prints the flat profile (self time
by function) and self time by package. Sampling costs time too: read percentages, not rates.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.harness import BIN, Harness, Server, free_port
from bench.report import Report
from bench.run import (
    SCRATCH,
    Bench,
    Chain,
    Load,
    Plan,
    check_services,
    create_note,
    ensure_services,
)

COUNTERS_SQL = """
SELECT 'db' AS name, xact_commit AS a, xact_rollback AS b, tup_returned AS c, tup_fetched AS d,
       0::bigint AS e
FROM pg_stat_database WHERE datname = current_database()
UNION ALL
SELECT relname, n_tup_ins, n_tup_upd, n_tup_del, coalesce(idx_scan, 0), coalesce(seq_scan, 0)
FROM pg_stat_user_tables
"""


def db_counters(harness: Harness, database: str) -> dict[str, tuple[int, ...]]:
    rows = harness.pg_fetch(COUNTERS_SQL, database=database)
    return {row[0]: tuple(int(x) for x in row[1:]) for row in rows}


def db_report(before: dict[str, tuple[int, ...]], after: dict[str, tuple[int, ...]], n: int) -> str:
    """What PostgreSQL did per successful request, from its statistics counters."""
    if not n:
        return "no successful request: no per-request database figures"
    delta = {
        k: tuple(a - b for a, b in zip(after[k], before.get(k, (0,) * 5), strict=True))
        for k in after
    }
    commits, rollbacks, returned, fetched, _ = delta.pop("db")
    lines = [
        f"PostgreSQL per successful request ({n:,} requests): "
        f"{commits / n:.2f} commits, {rollbacks / n:.2f} rollbacks, "
        f"{fetched / n:.1f} rows fetched, {returned / n:.1f} rows returned",
        f"  {'table':<22} {'inserts':>8} {'updates':>8} {'deletes':>8} {'idx scans':>10} {'seq scans':>10}",
    ]
    for table, (ins, upd, dele, idx, seq) in sorted(delta.items()):
        if ins or upd or dele or idx or seq:
            lines.append(
                f"  {table:<22} {ins / n:>8.2f} {upd / n:>8.2f} {dele / n:>8.2f} "
                f"{idx / n:>10.2f} {seq / n:>10.2f}"
            )
    return "\n".join(lines)


def package_of(path: str | None) -> str:
    if not path:
        return "(native)"
    p = path.replace("\\", "/")
    if "site-packages/" in p:
        return p.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    for top in ("auth_server", "resource_server", "shared", "bench"):
        if f"/{top}/" in p:
            return top + "/" + p.split(f"/{top}/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if "/lib/python3" in p:
        rest = p.split("/lib/python3", 1)[1].split("/", 1)[1]
        return "stdlib:" + rest.split("/", 1)[0].removesuffix(".py")
    if p.startswith("<sqlalchemy"):
        return "sqlalchemy"
    if p.startswith("<"):
        return p
    return "other"


PROJECT = ("auth_server/", "resource_server/", "shared/")


def walk(
    frame: Any,
    on_stack: frozenset[str],
    own_stack: frozenset[str],
    acc: dict[str, dict[str, float]],
) -> None:
    """Attribute every leaf's time (pyinstrument's synthetic `[self]` leaves included):
    - "self": to the function that spent it;
    - "package": to each package on the stack at that moment (inclusive time);
    - "project": to each of our own functions on the stack (inclusive time)."""
    synthetic = bool(frame.is_synthetic_leaf)
    if not synthetic:
        package = package_of(frame.file_path)
        on_stack = on_stack | {package}
        if package.startswith(PROJECT):
            own_stack = own_stack | {f"{frame.function}  ({package})"}
    if frame.children:
        for child in frame.children:
            walk(child, on_stack, own_stack, acc)
        return
    if frame.function == "[await]":
        acc["package"]["(awaiting)"] += frame.time
        return
    owner = frame.parent if synthetic and frame.parent is not None else frame
    acc["self"][f"{owner.function}  ({package_of(owner.file_path)})"] += frame.time
    for name in on_stack:
        acc["package"][name] += frame.time
    for name in own_stack:
        acc["project"][name] += frame.time


def event_loop_frame(frame: Any) -> Any:
    """The frame that runs the event loop (asyncio's Runner.run), so start-up isn't counted."""
    best = None
    stack = [frame]
    while stack:
        f = stack.pop()
        if (f.file_path or "").endswith("asyncio/runners.py") and f.function.endswith("run"):
            if best is None or f.time > best.time:
                best = f
            continue
        stack.extend(f.children)
    return best


def _contains(frame: Any, target: Any) -> bool:
    stack = [frame]
    while stack:
        f = stack.pop()
        if f is target:
            return True
        stack.extend(f.children)
    return False


def summarize(session_path: Path, out_prefix: Path, top: int = 30) -> str:
    from pyinstrument.renderers import ConsoleRenderer, HTMLRenderer
    from pyinstrument.session import Session

    session = Session.load(str(session_path))
    tree = ConsoleRenderer(show_all=True, time="percent_of_total").render(session)
    flat = ConsoleRenderer(show_all=True, flat=True, time="percent_of_total").render(session)
    out_prefix.with_suffix(".txt").write_text(tree + "\n\n" + flat)
    out_prefix.with_suffix(".html").write_text(HTMLRenderer().render(session))

    renderer = ConsoleRenderer(show_all=True)
    root = renderer.preprocess(session.root_frame())
    lines: list[str] = []
    if root is None:
        return "no samples"
    loop = event_loop_frame(root)
    # SQLAlchemy's asyncio layer runs the ORM in greenlets, which pyinstrument shows as separate
    # stacks beside the main one: they are request work too.
    startup = next((c for c in root.children if loop is not None and _contains(c, loop)), None)
    frames = [loop] if loop is not None else []
    frames += [c for c in root.children if c is not startup and c is not loop]
    if not frames:
        frames = [root]
    total = sum(f.time for f in frames) or 1.0
    acc: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for f in frames:
        marker = frozenset() if f is loop else frozenset({"(greenlet stacks: SQLAlchemy ORM)"})
        walk(f, marker, frozenset(), acc)
    sections = (
        ("package", "time with the package on the stack (inclusive)", 18),
        ("project", "time in our own functions (inclusive)", 18),
        ("self", "self time by function", top),
    )
    lines.append(
        f"{total:.1f} s sampled serving requests ({total / (root.time or 1):.0%} of the run; "
        "start-up and shut-down excluded); percentages are of that"
    )
    for key, title, count in sections:
        lines += ["", f"{title}:"]
        for name, value in sorted(acc[key].items(), key=lambda kv: -kv[1])[:count]:
            lines.append(f"  {value / total:6.1%}  {name}")
    text = "\n".join(lines)
    out_prefix.with_suffix(".summary.txt").write_text(text + "\n")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("target", choices=["me", "notes", "healthz", "refresh", "bare"])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--interval", type=float, default=0.0005, help="sampling interval, s")
    parser.add_argument("--no-services", action="store_true")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args(argv)
    if not args.no_services:
        ensure_services()
    SCRATCH.mkdir(parents=True, exist_ok=True)
    session_path = SCRATCH / f"profile-{args.target}.pyisession"
    session_path.unlink(missing_ok=True)
    plan = Plan.make(True, None, None)
    with Harness(args.pg, args.redis) as h:
        check_services(h)
        bench = Bench(h, plan, Report(quick=True))
        bench.setup()
        pyinstrument = [
            sys.executable,
            "-m",
            "pyinstrument",
            "-r",
            "pyisession",
            "-o",
            str(session_path),
            "-i",
            str(args.interval),
        ]
        port = free_port()
        server: Server
        if args.target == "bare":
            from bench.harness import REPO
            from bench.run import resource_serve_defaults
            from tests.e2e.servers import base_env

            path = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(REPO)) if p)
            env = base_env() | {"PYTHONPATH": path} | resource_serve_defaults(h.workdir)
            command = ["-m", "bench.refserve", "bare", str(port)]
            server = h.start(
                "bare-profiled", [*pyinstrument, *command], env, port, ready_path="/openapi.json"
            )
            load = Load(f"{server.url}/me", connections=args.connections)
        elif args.target == "refresh":
            command = [
                str(BIN / "auth-server"),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ]
            server = h.start("auth-profiled", [*pyinstrument, *command], bench.auth_env, port)
            chain = Chain.create(h, "profile", bench.take(plan.pool))
            load = Load(f"{server.url}/token", connections=args.connections, chain=chain)
        else:
            env = bench.resource_env_for(bench.issuer, "resource-profiled")
            command = [
                str(BIN / "resource-server"), "serve", "--host", "127.0.0.1", "--port", str(port),
            ]  # fmt: skip
            server = h.start("resource-profiled", [*pyinstrument, *command], env, port)
            bearer = {"Authorization": f"Bearer {bench.access_token()}"}
            path = "/healthz" if args.target == "healthz" else "/me"
            if args.target == "notes":
                path = f"/notes/{create_note(server.url, bearer)}"
            load = Load(f"{server.url}{path}", bearer, connections=args.connections)
        bench.measure("profile warm-up", load, 2)
        before = None
        if args.target == "refresh":
            time.sleep(1.5)  # let the warm-up's counters reach the statistics first
            before = db_counters(h, bench.main_db)
        result = bench.measure("profile", load, args.seconds)
        if before is not None:
            time.sleep(1.5)  # PostgreSQL publishes a backend's counters within a second
            print(db_report(before, db_counters(h, bench.main_db), result.ok()))
        print(
            f"{args.target}: {result.good_rps():,.0f} requests/s under the profiler, "
            f"p50 {result.p('p50'):.1f} ms, {result.bad} failed"
        )
        h.stop(server)
    if not session_path.exists():
        print(f"pyinstrument wrote no session ({session_path})", file=sys.stderr)
        return 1
    print(summarize(session_path, SCRATCH / f"profile-{args.target}"))
    print(f"\nfull profile: {SCRATCH}/profile-{args.target}.html (and .txt)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
