"""The `resource-server` command: serve and migrate. Exit codes 0 / 2 (bad arguments) / 1."""

from __future__ import annotations

from pathlib import Path

import typer

from resource_server.persistence.database import migrate as migrate_database
from resource_server.settings import ResourceSettings
from shared.service.cli import ServeOptions, guarded, load_settings, run_main, run_server

app = typer.Typer(
    help="notes-auth: the notes resource server.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _settings() -> ResourceSettings:
    return load_settings(ResourceSettings, "RESOURCE_")


def _migrate(settings: ResourceSettings) -> None:
    guarded(lambda: migrate_database(settings.database_url), "migration")


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
    ssl_certfile: Path | None = typer.Option(
        None, "--ssl-certfile", exists=True, dir_okay=False, help="serve TLS with this certificate"
    ),
    ssl_keyfile: Path | None = typer.Option(
        None, "--ssl-keyfile", exists=True, dir_okay=False, help="the certificate's private key"
    ),
    access_log: bool | None = typer.Option(
        None, "--access-log/--no-access-log", help="log every request (default: the setting)"
    ),
) -> None:
    """Run the notes API (migrating first unless --no-migrate)."""
    settings = _settings()
    if not no_migrate:
        _migrate(settings)
    options = ServeOptions(
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level,
        access_log=settings.access_log if access_log is None else access_log,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        graceful_shutdown=settings.graceful_shutdown_timeout,
    )
    run_server("resource_server.main:app_factory", options)


def main() -> None:
    run_main(app)
