"""`auth-server keys list | rotate [--emergency] | retire KID`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncEngine

from auth_server.keys.store import KeyStore, KeyStoreError
from auth_server.settings import AuthSettings
from shared.db import create_engine, create_session_maker

T = TypeVar("T")

keys_app = typer.Typer(help="Signing keys: list, rotate, retire.", no_args_is_help=True)


def build_key_store(settings: AuthSettings) -> tuple[AsyncEngine, KeyStore]:
    """A key store for command-line use; emergency retirements reach the revocation feed."""
    from auth_server.sessions.revocation import kid_retired_hook

    engine = create_engine(settings.database_url)
    session_maker = create_session_maker(engine)
    store = KeyStore(session_maker, settings)
    store.on_key_retired = kid_retired_hook(session_maker, settings, redis=None)
    return engine, store


def _run(action: Callable[[KeyStore], Awaitable[T]]) -> T:
    async def main() -> T:
        engine, store = build_key_store(AuthSettings())
        try:
            return await action(store)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(main())
    except KeyStoreError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


@keys_app.command("list")
def list_keys() -> None:
    """Every key with its state and dates."""
    for key in _run(lambda store: store.list_keys()):
        dates = f"created {key.created_at:%Y-%m-%d %H:%M:%S}Z"
        if key.publish_until and key.state == "retiring":
            dates += f", published until {key.publish_until:%Y-%m-%d %H:%M:%S}Z"
        typer.echo(f"{key.kid}  {key.state:<8}  {dates}")


@keys_app.command("rotate")
def rotate(
    emergency: bool = typer.Option(
        False, "--emergency", help="retire the active key at once: its tokens stop verifying"
    ),
) -> None:
    """Promote the next key to active and create a new next key."""
    result = _run(lambda store: store.rotate(emergency=emergency))
    typer.echo(f"active: {result.active_kid}")
    typer.echo(f"next: {result.next_kid}")
    if result.previous_kid:
        typer.echo(f"{result.previous_state}: {result.previous_kid}")


# A kid is a base64url thumbprint and may begin with "-": take it as the argument, not an option.
@keys_app.command("retire", context_settings={"ignore_unknown_options": True})
def retire(kid: str = typer.Argument(..., help="the key id")) -> None:
    """Stop publishing a retiring key now."""
    _run(lambda store: store.retire(kid))
    typer.echo(f"retired: {kid}")
