"""The `resource-server` command: serve and migrate. Exit codes 0 / 2 (bad arguments) / 1."""

from __future__ import annotations

import sys

import typer

from resource_server.settings import ResourceSettings
from shared.settings import describe_settings_error

app = typer.Typer(
    help="notes-auth: the notes resource server.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


def _settings() -> ResourceSettings:
    try:
        return ResourceSettings()
    except Exception as exc:
        raise fail(describe_settings_error(exc, "RESOURCE_")) from None


def _migrate(settings: ResourceSettings) -> None:
    from resource_server.persistence.database import migrate as run

    try:
        run(settings.database_url)
    except Exception as exc:
        raise fail(f"migration failed: {exc}") from None


@app.command()
def migrate() -> None:
    """Upgrade the resource database to the latest schema."""
    _migrate(_settings())
    typer.echo("resource database is up to date")


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="address to listen on"),
    port: int = typer.Option(8001, min=1, max=65535),
    workers: int = typer.Option(1, min=1, help="worker processes"),
    no_migrate: bool = typer.Option(False, "--no-migrate", help="don't migrate before serving"),
) -> None:
    """Run the notes API (migrating first unless --no-migrate)."""
    import uvicorn

    settings = _settings()
    if not no_migrate:
        _migrate(settings)
    uvicorn.run(
        "resource_server.main:app_factory",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level.lower(),
        server_header=False,
    )


def main() -> None:
    try:
        app()
    except Exception as exc:  # never a traceback: one line, exit 1
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)
