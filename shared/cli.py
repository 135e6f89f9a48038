"""Command-line conventions both services' commands share (CONTRACT §2): exit 0 on success,
2 on bad arguments (click's usage errors), 1 on failure with a one-line message on stderr and
no traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

import typer

from shared.settings import describe_settings_error

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


def run_server(app_factory: str, *, host: str, port: int, workers: int, log_level: str) -> None:
    """Serve `module:factory` with uvicorn (an import string, so `--workers N` works).

    Forwarded headers are not trusted by uvicorn: the auth server decides about them itself
    (AUTH_TRUSTED_PROXIES), and the resource server doesn't use the client address."""
    import uvicorn

    uvicorn.run(
        app_factory,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level.lower(),
        proxy_headers=False,
        server_header=False,
    )
