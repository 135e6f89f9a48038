"""Command-line conventions both services' commands share (docs/reference/cli.md): exit 0 on
success, 2 on bad arguments (click's usage errors), 1 on failure with a one-line message on
stderr and no traceback."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import typer
import uvicorn
from uvicorn.supervisors import Multiprocess

from shared.service.settings import ServiceSettings, describe_settings_error

S = TypeVar("S")


def fail(message: str) -> typer.Exit:
    """Print `error: message` on stderr; raise the returned Exit (code 1)."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


def load_settings(factory: Callable[[], S], prefix: str) -> S:
    try:
        return factory()
    except Exception as exc:  # a settings error is one line naming the variable
        raise fail(describe_settings_error(exc, prefix)) from None


def guarded(action: Callable[[], None], what: str) -> None:
    """Run `action`; any failure becomes `error: <what> failed: <reason>` and exit 1."""
    try:
        action()
    except typer.Exit:
        raise
    except Exception as exc:
        raise fail(f"{what} failed: {exc}") from None


def run_main(app: typer.Typer) -> None:
    """The console-script entry point: never a traceback."""
    try:
        app()
    except Exception as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        typer.echo(f"error: {first_line}", err=True)
        sys.exit(1)


@dataclass(frozen=True, slots=True)
class ServeOptions:
    host: str
    port: int
    workers: int
    log_level: str
    access_log: bool = False
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    graceful_shutdown: int = 25


def add_serve_command(
    app: typer.Typer,
    *,
    app_factory: str,
    default_port: int,
    summary: str,
    settings: Callable[[], ServiceSettings],
    migrate: Callable[[Any], None],
) -> None:
    """Add the `serve` command, the same for both services: options, migrating first unless
    --no-migrate, then `run_server` with what the settings say."""

    def serve(
        host: str = typer.Option("127.0.0.1", help="address to listen on"),
        port: int = typer.Option(default_port, min=1, max=65535),
        workers: int = typer.Option(1, min=1, help="worker processes"),
        no_migrate: bool = typer.Option(False, "--no-migrate", help="don't migrate before serving"),
        ssl_certfile: Path | None = typer.Option(
            None,
            "--ssl-certfile",
            exists=True,
            dir_okay=False,
            help="serve TLS with this certificate",
        ),
        ssl_keyfile: Path | None = typer.Option(
            None,
            "--ssl-keyfile",
            exists=True,
            dir_okay=False,
            help="the certificate's private key",
        ),
        access_log: bool | None = typer.Option(
            None, "--access-log/--no-access-log", help="log every request (default: the setting)"
        ),
    ) -> None:
        loaded = settings()
        if not no_migrate:
            migrate(loaded)
        options = ServeOptions(
            host=host,
            port=port,
            workers=workers,
            log_level=loaded.log_level,
            access_log=loaded.access_log if access_log is None else access_log,
            ssl_certfile=ssl_certfile,
            ssl_keyfile=ssl_keyfile,
            graceful_shutdown=loaded.graceful_shutdown_timeout,
        )
        run_server(app_factory, options)

    serve.__doc__ = summary
    app.command("serve")(serve)


def run_server(app_factory: str, options: ServeOptions) -> None:
    """Serve `module:factory` with uvicorn (an import string, so `--workers N` works).

    - Forwarded headers are not trusted by uvicorn: each service decides about them itself
      (AUTH_TRUSTED_PROXIES, RESOURCE_TRUSTED_PROXIES).
    - No access log by default: it costs about 30% of a small endpoint's throughput here, and
      the proxy in front logs requests anyway (`--access-log` turns it on).
    - With a certificate and key, TLS (and the services then send Strict-Transport-Security).
    - On SIGTERM, in-flight requests get `graceful_shutdown` seconds to finish."""
    if (options.ssl_certfile is None) != (options.ssl_keyfile is None):
        raise typer.BadParameter("--ssl-certfile and --ssl-keyfile go together")
    settings: dict[str, Any] = {
        "factory": True,
        "host": options.host,
        "port": options.port,
        "workers": options.workers,
        "log_level": options.log_level.lower(),
        "access_log": options.access_log,
        "proxy_headers": False,
        "server_header": False,
        "ssl_certfile": str(options.ssl_certfile) if options.ssl_certfile else None,
        "ssl_keyfile": str(options.ssl_keyfile) if options.ssl_keyfile else None,
        "timeout_graceful_shutdown": options.graceful_shutdown,
    }
    if options.workers <= 1:
        uvicorn.run(app_factory, **settings)
        return
    # What uvicorn.run does for several workers, with a supervisor that lets go of the
    # listening socket first on shutdown.
    config = uvicorn.Config(app_factory, **settings)
    with contextlib.suppress(KeyboardInterrupt):
        DrainingSupervisor(config, sockets=[config.bind_socket()]).run()


class DrainingSupervisor(Multiprocess):
    """uvicorn's supervisor for `--workers N`, closing its own copy of the listening socket
    before it asks the workers to stop. uvicorn's keeps that copy open while the workers drain:
    the kernel goes on queueing connections that no process will accept, and resets them when
    the supervisor exits (behind a proxy, a 502 for a request that could have gone to another
    replica). With the copy closed, the socket closes when the workers close theirs, at the
    start of their drain: a new connection is refused at once, as with one worker."""

    def terminate_all(self) -> None:
        for sock in self.sockets:
            sock.close()
        super().terminate_all()
