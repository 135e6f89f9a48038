"""The `resource-server` command: serve and migrate. Exit codes 0 / 2 (bad arguments) / 1."""

from __future__ import annotations

import typer

from resource_server.persistence.database import migrate as migrate_database
from resource_server.settings import ResourceSettings
from shared.service.cli import add_serve_command, guarded, load_settings, run_main

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


add_serve_command(
    app,
    app_factory="resource_server.main:app_factory",
    default_port=8001,
    summary="Run the notes API (migrating first unless --no-migrate).",
    settings=_settings,
    migrate=_migrate,
)


def main() -> None:
    run_main(app)
