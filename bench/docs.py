"""docs/benchmarks.md: the last full run, with the machine, the commands, the table and the chart."""

from __future__ import annotations

from typing import Any

from bench.report import Figure, Report

METHOD = """\
## How it is measured

Everything runs on this one machine over loopback: the servers exactly as `serve` starts them
(`auth-server serve`, `resource-server serve`: uvicorn with the settings `serve` gives it, the
access log off by default), PostgreSQL and Redis as installed on the machine, and `wrk` with one thread as the load
generator. Each comparison is *interleaved*: every variant runs once per round, rounds follow
each other, each round starts one place further along the list, and a ratio is taken *within*
a round; the report gives the median over rounds. Between two measurements the benchmark waits
until the machine is idle again, so the backlog of one load (Argon2 hashing still running after
wrk stopped, say) does not fall into the next.

1. **GET /me** with one valid access token (`wrk -t1 -c32`), against: a bare FastAPI app with one
   route and no authentication, served with the same uvicorn launcher as ours (the ceiling);
   the "tutorial" way (PyJWT + `PyJWKClient`, a full decode per request); an app that calls
   the auth server's `POST /introspect` on every request (confidential client, HTTP Basic; 8
   connections, since its rate is bound by the auth server's Argon2 check of the client secret
   and more connections would only lengthen the queue); our own unauthenticated `/healthz`;
   and the same resource server with uvicorn's access log on (`RESOURCE_ACCESS_LOG=true`,
   written to a file), which is what the default of `serve` (off) saves.
   The reference apps (`bench/apps.py`) are started by the services' own uvicorn launcher
   (`run_server`), so they share every uvicorn setting with `serve`. The denylist case is a second resource server whose auth
   server's revocation feed held 100,000 entries (half `jti`, half `sid`, bulk-inserted) before it
   started; the run waits until its `/metrics` shows them all applied.
2. **GET /notes/{id}** on a SQLite and on a PostgreSQL resource server. The share of
   authentication is the time per request of `/me` minus that of `/healthz` on the same server,
   over the time per request of `/notes/{id}`.
3. **POST /token**: the refresh grant with chained refresh tokens (a Lua queue in wrk: each
   request takes the oldest token, each response puts the rotated one back; thousands of
   bulk-loaded sessions, so no session refreshes more than a few times a minute) on one worker
   and on `serve --workers 2`, both on PostgreSQL; the client-credentials grant (confidential
   client, HTTP Basic); password logins (64 users, production Argon2 costs, 16 clients).
   Logins are driven by a small asyncio client rather than wrk: each one takes seconds under
   load, and wrk counts only what completes inside its window, so the client waits for the
   last login and divides by the real elapsed time.
4. **Login storm**: 16 clients doing password logins back to back on the one-worker auth server; during
   it, three probes (one connection each, one request every 10 ms) on `/healthz`,
   `/.well-known/jwks.json` and a refresh; the same probes on the idle server for comparison.
   Then a burst of 64 logins sent at once, each awaited up to a minute: bounded hashing
   means some are refused at once (503 + `Retry-After`) and every one is answered within
   10 s; unbounded queueing means all are served, the last ones after many seconds.
5. **Growth**: two auth servers, one on a database with 1,000 sessions and one with 1,000,000
   (users, sessions and refresh tokens bulk-loaded with `generate_series`, see `bench/seed.py`),
   refreshing 1,000 sessions picked at random, 8 connections, interleaved.
6. **Revocation latency**: a fresh session's access token works at the resource server; its
   refresh token is revoked (`POST /revoke`, which ends the session); the time from `/revoke`
   returning to the resource server's first 401, once with the resource server subscribed to
   Redis, once polling the feed (`RESOURCE_REVOCATION_POLL_INTERVAL`, default 2 s).
7. **Timing parity**: alternating password logins with a wrong password for an existing user and
   with an unknown user, one at a time; the ratio of the two medians.
8. **Cold start**: from spawning `serve` to the first 200 from `/readyz` (the schema is already
   current); resident memory (VmRSS) of each worker process, just started and after each load.

The auth servers use production Argon2 costs (3 passes, 64 MiB, 4 lanes) throughout. Two kinds
of limits are lifted, because one load generator on 127.0.0.1 stands for many clients: the
failed-login throttles (`AUTH_LOGIN_*_LIMIT=1000000`, so that scenario 7's wrong passwords are
hashed rather than answered 429) and the per-client-address refresh limit
(`AUTH_CLIENT_RATE_LIMIT`). Their bookkeeping still runs on every request. The per-session
refresh limit stays at its default: every refresh pool holds enough sessions that none of them
refreshes more than about 20 times a minute.
"""


def render(report: Report, chart_name: str) -> str:
    meta: dict[str, Any] = report.meta
    machine: dict[str, str] = meta.get("machine", {})
    plan = meta.get("plan")
    kind = "quick (smoke) run" if report.quick else "full run"
    lines = [
        "# Benchmarks",
        "",
        f"The last {kind} of `make bench`: {meta.get('started', '')}, "
        f"{meta.get('elapsed', 0) / 60:.1f} minutes. Produced by `bench/` (`python -m bench`); "
        "regenerated by every full run.",
        "",
    ]
    headline = _headline(report)
    if headline:
        lines += ["**Headline** (median of rounds, same run):", "", *headline, ""]
    lines += ["## Machine", ""]
    lines += [f"- {key}: {value}" for key, value in machine.items()]
    if plan is not None:
        lines += [
            f"- plan: {plan.rounds} rounds, {plan.duration} s per wrk run, "
            f"{plan.connections} connections (`wrk -t1`)",
        ]
    lines += [
        "",
        "## Commands",
        "",
        "```sh",
        "make bench            # full run (< 10 min): writes docs/benchmarks.md and docs/benchmarks.png",
        "make bench QUICK=1    # smoke run (< 2 min): prints, writes var/bench/ only",
        "python -m bench --only verification,storm --rounds 5   # part of it (never writes docs/)",
        "python -m bench.profile me|refresh                      # pyinstrument profile under wrk load",
        "```",
        "",
        "`make bench` installs wrk with apt-get when it is missing and starts the machine's",
        "PostgreSQL and Redis when they are not running (`scripts/bench_services.sh`). Each run",
        "creates its own databases (`notes_bench_<run>_*`) and Redis prefix (`notes-bench-<run>`)",
        "and removes them at the end, also on Ctrl-C.",
        "",
        "## Results",
        "",
        report.markdown_table(),
        "",
        f"![benchmark chart]({chart_name})",
        "",
    ]
    targets = [f for f in report.figures if f.target is not None]
    met = sum(1 for f in targets if f.met)
    lines += [f"Targets met: {met} of {len(targets)}.", ""]
    notes = list(report.notes)
    notes += [f"error: {e}" for e in report.errors]
    if notes:
        lines += ["Notes:", "", *[f"- {n}" for n in notes], ""]
    lines += [METHOD, _rounds(report)]
    return "\n".join(lines).rstrip() + "\n"


def _find(report: Report, name: str) -> Figure | None:
    return next((f for f in report.figures if f.name == name), None)


def _headline(report: Report) -> list[str]:
    out = []
    for name in ("/me vs bare FastAPI app", "/me vs naive PyJWT app"):
        f = _find(report, name)
        if f is not None:
            target = f" (target {f.target.describe(f.unit)}: {f.status()})" if f.target else ""
            out.append(f"- GET /me {name[4:]}: **{f.value_text()}**{target}")
    return out


def _table(values: dict[str, list[float]], other: dict[str, list[float]], fmt: str) -> list[str]:
    n = max(len(v) for v in values.values())
    lines = ["| load | " + " | ".join(f"round {i + 1}" for i in range(n)) + " |"]
    lines.append("|---|" + "---|" * n)
    for name, row in values.items():
        cells = []
        for i, value in enumerate(row):
            share = other.get(name, [])[i] if i < len(other.get(name, [])) else None
            cell = format(value, fmt)
            if share is not None and share == share:  # not NaN
                cell += f" <sub>({share:.0%})</sub>"
            cells.append(cell)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _rounds(report: Report) -> str:
    lines = [
        "## Per-round figures",
        "",
        "Successful requests/s; in brackets, the share of the CPUs that other jobs on the machine",
        "used during that measurement (the higher, the less the figure says).",
        "",
    ]
    rounds = report.raw.get("scenario1_rounds")
    if rounds:
        lines += ["Scenarios 1 and 2:", ""]
        lines += _table(rounds, report.raw.get("scenario1_other", {}), ",.0f")
        lines.append("")
    tokens = report.raw.get("scenario3_rounds")
    if tokens:
        lines += ["Scenario 3:", ""]
        lines += _table(tokens, report.raw.get("scenario3_other", {}), ",.1f")
        lines.append("")
    load = report.raw.get("denylist_load")
    if load:
        lines += [f"Denylist: {load}.", ""]
    return "\n".join(lines)
