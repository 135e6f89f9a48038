"""The `resource-server` command: serve and migrate. Exit codes 0 / 2 (bad arguments) / 1."""

from __future__ import annotations

import typer

from resource_server.settings import ResourceSettings
from shared.cli import guarded, load_settings, run_main, run_server

app = typer.Typer(
    help="notes-auth: the notes resource server.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _settings() -> ResourceSettings:
    return load_settings(ResourceSettings, "RESOURCE_")


def _migrate(settings: ResourceSettings) -> None:
    from resource_server.persistence.database import migrate as run

    guarded(lambda: run(settings.database_url), "migration")


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
    settings = _settings()
    if not no_migrate:
        _migrate(settings)
    run_server(
        "resource_server.main:app_factory",
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level,
    )


def main() -> None:
    run_main(app)
