"""Running wrk (closed-loop HTTP load, one thread) and reading its results.

Each run gets a Lua script composed of a `CONFIG` table, a scenario script from bench/lua/
and bench/lua/report.lua, whose done() prints one `BENCHJSON {...}` line that is parsed here.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.harness import BenchmarkBroken

LUA = Path(__file__).resolve().parent / "lua"
RUNNING: set[subprocess.Popen[str]] = set()  # killed by Harness.close() on the way out


def kill_running() -> None:
    for proc in list(RUNNING):
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    RUNNING.clear()


def lua_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    if isinstance(value, Mapping):
        items = ", ".join(f"[{lua_value(str(k))}] = {lua_value(v)}" for k, v in value.items())
        return "{" + items + "}"
    if isinstance(value, Sequence):
        return "{" + ", ".join(lua_value(v) for v in value) + "}"
    raise TypeError(f"no Lua form for {value!r}")


@dataclass
class WrkResult:
    requests: int
    duration_s: float
    latency_ms: dict[str, float]
    errors: dict[str, int]
    statuses: dict[str, int] = field(default_factory=dict)
    extra: dict[str, int] = field(default_factory=dict)
    other_load: float = math.nan  # share of the CPUs other jobs used meanwhile (Bench.measure)

    @property
    def rps(self) -> float:
        """Completed requests per second (any status)."""
        return self.requests / self.duration_s if self.duration_s else 0.0

    def ok(self, status: int = 200) -> int:
        return self.statuses.get(str(status), 0)

    def ok_rps(self, status: int = 200) -> float:
        return self.ok(status) / self.duration_s if self.duration_s else 0.0

    def good_rps(self) -> float:
        """2xx/3xx responses per second: counted by status when the script counts them."""
        if self.statuses:
            good = sum(v for k, v in self.statuses.items() if k.startswith(("2", "3")))
        else:
            good = self.requests - int(self.errors.get("status", 0))
        return good / self.duration_s if self.duration_s else 0.0

    @property
    def bad(self) -> int:
        """Socket errors, timeouts and non-2xx/3xx responses."""
        e = self.errors
        return sum(int(e.get(k, 0)) for k in ("connect", "read", "write", "status", "timeout"))

    def p(self, name: str) -> float:
        return self.latency_ms[name]


def _compose(workdir: Path, name: str, scripts: Sequence[str], config: Mapping[str, Any]) -> Path:
    parts = [f"CONFIG = {lua_value(dict(config))}\n"]
    for script in [*scripts, "report.lua"]:
        parts.append((LUA / script).read_text())
    if "delay_ms" in config:
        parts.append("function delay() return CONFIG.delay_ms end\n")
    path = workdir / "lua" / f"{name}.lua"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts))
    return path


class WrkRun:
    """One wrk process; `start()` then `result()`, or `run()` for both."""

    def __init__(
        self,
        workdir: Path,
        name: str,
        url: str,
        *,
        connections: int,
        duration: float,
        scripts: Sequence[str] = (),
        config: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30,
    ) -> None:
        if shutil.which("wrk") is None:
            raise BenchmarkBroken("wrk is not installed (make bench installs it with apt-get)")
        self.name = name
        self.url = url
        script = _compose(workdir, name, scripts, config or {})
        self.argv = [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(duration))}s",
            f"--timeout={int(timeout)}s",
            "-s",
            str(script),
        ]
        for key, value in (headers or {}).items():
            self.argv += ["-H", f"{key}: {value}"]
        self.argv.append(url)
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> WrkRun:
        self.proc = subprocess.Popen(
            self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        RUNNING.add(self.proc)
        return self

    def result(self) -> WrkResult:
        assert self.proc is not None
        out, err = self.proc.communicate()
        RUNNING.discard(self.proc)
        if self.proc.returncode != 0:
            raise BenchmarkBroken(f"wrk failed on {self.url} ({self.name}): {err or out}")
        for line in out.splitlines():
            if line.startswith("BENCHJSON "):
                data = json.loads(line[len("BENCHJSON ") :])
                break
        else:
            raise BenchmarkBroken(f"wrk printed no result for {self.name}:\n{out}\n{err}")
        latency = {k: float(v) / 1000 for k, v in data["latency"].items()}  # µs -> ms
        return WrkResult(
            requests=int(data["requests"]),
            duration_s=float(data["duration_us"]) / 1e6,
            latency_ms=latency,
            errors={k: int(v) for k, v in data["errors"].items()},
            statuses={k: int(v) for k, v in (data.get("statuses") or {}).items()},
            extra={k: int(v) for k, v in (data.get("extra") or {}).items()},
        )

    def run(self) -> WrkResult:
        return self.start().result()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
