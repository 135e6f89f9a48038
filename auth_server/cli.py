"""The `auth-server` command (typer): serve, migrate, users, clients, keys.

Exit codes: 0 on success, 2 on bad arguments (click's usage errors), 1 on failure, with a
one-line message on stderr and no traceback.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer

from auth_server.keys.cli import keys_app
from auth_server.settings import AuthSettings
from shared.cli import fail, guarded, load_settings, run_main, run_server

T = TypeVar("T")

app = typer.Typer(
    help="notes-auth: the auth server.", no_args_is_help=True, pretty_exceptions_enable=False
)
users_app = typer.Typer(help="Users.", no_args_is_help=True)
clients_app = typer.Typer(help="OAuth clients.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(clients_app, name="clients")
app.add_typer(keys_app, name="keys")


def _settings() -> AuthSettings:
    return load_settings(AuthSettings, "AUTH_")


def _migrate(settings: AuthSettings) -> None:
    from auth_server.oauth.clients import ensure_web_client
    from auth_server.persistence.database import migrate
    from shared.db import create_engine, create_session_maker

    migrate(settings.database_url)

    async def seed() -> None:
        engine = create_engine(settings.database_url)
        try:
            async with create_session_maker(engine)() as db:
                await ensure_web_client(db)
        finally:
            await engine.dispose()

    asyncio.run(seed())


def _with_context(action: Callable[..., Awaitable[T]]) -> T:
    """Run `action(db, hasher)` against the configured database."""
    from auth_server.users.passwords import PasswordHasher
    from shared.db import create_engine, create_session_maker

    settings = _settings()

    async def main() -> T:
        engine = create_engine(settings.database_url)
        try:
            async with create_session_maker(engine)() as db:
                return await action(db, PasswordHasher(settings))
        finally:
            await engine.dispose()

    return asyncio.run(main())


@app.command()
def migrate() -> None:
    """Upgrade the auth database to the latest schema (and seed the `web` client)."""
    settings = _settings()
    guarded(lambda: _migrate(settings), "migration")
    typer.echo("auth database is up to date")


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="address to listen on"),
    port: int = typer.Option(8000, min=1, max=65535),
    workers: int = typer.Option(1, min=1, help="worker processes"),
    no_migrate: bool = typer.Option(False, "--no-migrate", help="don't migrate before serving"),
) -> None:
    """Run the auth server (migrating first unless --no-migrate)."""
    settings = _settings()
    if not no_migrate:
        guarded(lambda: _migrate(settings), "migration")
    run_server(
        "auth_server.main:app_factory",
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level,
    )


@users_app.command("create")
def create_user(
    username: str = typer.Argument(...),
    email: str = typer.Option(..., "--email"),
    admin: bool = typer.Option(False, "--admin", help="may use the /admin endpoints"),
) -> None:
    """Create a user; the password is read from stdin."""
    from auth_server.users.service import InvalidIdentifier, UserExists, WeakPassword, register

    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise fail("no password on stdin")

    async def action(db, hasher):  # type: ignore[no-untyped-def]
        return await register(
            db, hasher, username=username, email=email, password=password, is_admin=admin
        )

    try:
        user = _with_context(action)
    except (InvalidIdentifier, WeakPassword, UserExists) as exc:
        raise fail(str(exc)) from None
    typer.echo(
        f"created user {user.username} (sub {user.id}){' with admin rights' if admin else ''}"
    )


@clients_app.command("create")
def create_client(
    client_id: str = typer.Argument(...),
    confidential: bool = typer.Option(False, "--confidential"),
    grant: list[str] = typer.Option(
        [], "--grant", help="password, refresh_token, client_credentials"
    ),
    scope: list[str] = typer.Option([], "--scope"),
) -> None:
    """Create an OAuth client. A confidential client's secret is printed once, on the last line."""
    from auth_server.oauth.clients import ClientExists, InvalidClientSpec
    from auth_server.oauth.clients import create_client as create

    # Each option may be repeated, or carry several values separated by spaces or commas.
    grants = [g for value in grant for g in value.replace(",", " ").split()]
    scopes = [s for value in scope for s in value.replace(",", " ").split()]

    async def action(db, hasher):  # type: ignore[no-untyped-def]
        return await create(
            db,
            hasher,
            client_id=client_id,
            confidential=confidential,
            grant_types=grants,
            scopes=scopes,
        )

    try:
        client, secret = _with_context(action)
    except (ClientExists, InvalidClientSpec) as exc:
        raise fail(str(exc)) from None
    typer.echo(f"created {'confidential' if confidential else 'public'} client {client.id}")
    typer.echo(f"grants: {client.grant_types}; scopes: {client.scopes}")
    if secret is not None:
        typer.echo("client secret (shown once, store it now):")
        typer.echo(secret)


def main() -> None:
    run_main(app)
