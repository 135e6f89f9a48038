"""Serve a reference app (bench/apps.py) with the uvicorn settings `serve` uses.

    python -m bench.refserve bare|naive|introspect PORT

It calls the services' own launcher (`run_server`, wherever the shared package keeps it) so the
reference apps follow any change to how `serve` starts uvicorn (access log, loop, headers). Only
if that launcher can't be found does it fall back to a copy of today's settings, and says so.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

LAUNCHER_MODULES = ("shared.service.cli", "shared.cli", "shared.service", "shared")


def _fallback_run_server(
    app_factory: str, *, host: str, port: int, workers: int, log_level: str
) -> None:
    import uvicorn

    uvicorn.run(
        app_factory,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level.lower(),
        access_log=os.environ.get("BENCH_ACCESS_LOG") == "1",
        proxy_headers=False,
        server_header=False,
    )


def find_run_server() -> tuple[Callable[..., Any], str]:
    for name in LAUNCHER_MODULES:
        try:
            module = importlib.import_module(name)
        except Exception:
            continue
        run = getattr(module, "run_server", None)
        if callable(run):
            return run, f"{name}.run_server"
    return _fallback_run_server, "bench.refserve._fallback_run_server"


def launch(run: Callable[..., Any], origin: str, app: str, port: int) -> None:
    """Call `run_server` the way `serve` does: with a ServeOptions object when the launcher
    takes one (filled from the same settings' defaults, passed in by bench/run.py), else with
    keyword arguments."""
    level = os.environ.get("BENCH_LOG_LEVEL", "INFO")
    module = importlib.import_module(origin.rsplit(".", 1)[0]) if "." in origin else None
    options_class = getattr(module, "ServeOptions", None) if module else None
    if isinstance(options_class, type) and dataclasses.is_dataclass(options_class):
        wanted: dict[str, Any] = {"host": "127.0.0.1", "port": port, "workers": 1}
        wanted["log_level"] = level
        if "BENCH_ACCESS_LOG" in os.environ:
            wanted["access_log"] = os.environ["BENCH_ACCESS_LOG"] == "1"
        names = {f.name for f in dataclasses.fields(options_class)}
        run(app, options_class(**{k: v for k, v in wanted.items() if k in names}))
        return
    run(app, host="127.0.0.1", port=port, workers=1, log_level=level)


def main() -> None:
    name, port = sys.argv[1], int(sys.argv[2])
    run, origin = find_run_server()
    print(f"refserve: {name} on {port} launched by {origin}", file=sys.stderr, flush=True)
    launch(run, origin, f"bench.apps:{name}_app", port)


if __name__ == "__main__":
    main()
