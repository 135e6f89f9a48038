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
from sqlalchemy.ext.asyncio import AsyncSession

from auth_server import provision
from auth_server.factors.actor import Actor
from auth_server.factors.lock import KINDS
from auth_server.factors.service import reset_factor_lock
from auth_server.keys.store import KeyStore, KeyStoreError
from auth_server.oauth.clients import ClientExists, InvalidClientSpec, create_client
from auth_server.ratelimit import (
    AttemptCounter,
    LimiterUnavailable,
    open_counter_store,
)
from auth_server.redis_client import open_redis
from auth_server.revocations import RevocationPublisher
from auth_server.settings import AuthSettings
from auth_server.state import build_key_store
from auth_server.users.normalize import canonical_username
from auth_server.users.passwords import PasswordHasher
from auth_server.users.service import (
    InvalidIdentifier,
    UserExists,
    WeakPassword,
    find_for_login,
    new_user,
    register,
)
from auth_server.users.throttle import LoginThrottle, account_key
from shared.revocation_feed import revocation_channel
from shared.service.cli import (
    add_serve_command,
    fail,
    guarded,
    load_settings,
    run_main,
)
from shared.service.db import create_engine, create_session_maker, transaction

T = TypeVar("T")

app = typer.Typer(
    help="notes-auth: the auth server.", no_args_is_help=True, pretty_exceptions_enable=False
)
users_app = typer.Typer(help="Users.", no_args_is_help=True)
clients_app = typer.Typer(help="OAuth clients.", no_args_is_help=True)
keys_app = typer.Typer(help="Signing keys: list, rotate, retire.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(clients_app, name="clients")
app.add_typer(keys_app, name="keys")


def _settings() -> AuthSettings:
    return load_settings(AuthSettings, "AUTH_")


def _in_transaction(settings: AuthSettings, action: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `action(db)` as one unit of work against the configured database."""

    async def main() -> T:
        engine = create_engine(settings.database_url)
        try:
            async with transaction(create_session_maker(engine)) as db:
                return await action(db)
        finally:
            await engine.dispose()

    return asyncio.run(main())


def _with_key_store(settings: AuthSettings, action: Callable[[KeyStore], Awaitable[T]]) -> T:
    """Run `action(store)` with a key store whose emergency retirements reach the revocation
    feed (and Redis, when configured)."""

    async def main() -> T:
        engine = create_engine(settings.database_url)
        redis = open_redis(settings.redis_url)
        publisher = RevocationPublisher(redis, revocation_channel(settings.redis_prefix))
        try:
            store = build_key_store(settings, create_session_maker(engine), publisher, redis)
            return await action(store)
        finally:
            if redis is not None:
                await redis.aclose()
            await engine.dispose()

    try:
        return asyncio.run(main())
    except KeyStoreError as exc:
        raise fail(str(exc)) from None


def _migrate(settings: AuthSettings) -> None:
    guarded(lambda: provision.migrate(settings), "migration")


@app.command()
def migrate() -> None:
    """Upgrade the auth database to the latest schema (and seed the `web` client)."""
    _migrate(_settings())
    typer.echo("auth database is up to date")


add_serve_command(
    app,
    app_factory="auth_server.main:app_factory",
    default_port=8000,
    summary="Run the auth server (migrating first unless --no-migrate).",
    settings=_settings,
    migrate=_migrate,
)


@users_app.command("create")
def create_user(
    username: str = typer.Argument(...),
    email: str = typer.Option(..., "--email"),
    admin: bool = typer.Option(False, "--admin", help="may use the /admin endpoints"),
) -> None:
    """Create a user; the password is read from stdin."""
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise fail("no password on stdin")
    settings = _settings()
    try:
        account = new_user(username=username, email=email, password=password, is_admin=admin)
        hasher = PasswordHasher(settings)
        try:
            # register() hashes outside the transaction (it commits its check first).
            user = _in_transaction(settings, lambda db: register(db, hasher, account))
        finally:
            hasher.close()
    except (InvalidIdentifier, WeakPassword, UserExists) as exc:
        raise fail(str(exc)) from None
    typer.echo(
        f"created user {user.username} (sub {user.id}){' with admin rights' if admin else ''}"
    )


@users_app.command("unlock")
def unlock_user(
    login: str = typer.Argument(..., help="username or email"),
    address: str | None = typer.Option(
        None, "--address", help="also forget this client address's failed logins"
    ),
) -> None:
    """Forget an account's failed logins, so that it may log in again at once."""
    settings = _settings()

    async def main() -> str:
        engine = create_engine(settings.database_url)
        redis = open_redis(settings.redis_url)
        try:
            async with transaction(create_session_maker(engine)) as db:
                user = await find_for_login(db, login)
            account = account_key(user.id if user else None, canonical_username(login))
            throttle = LoginThrottle(
                settings, AttemptCounter(open_counter_store(settings, engine, redis))
            )
            try:
                names = [user.username, user.email_normalized] if user else [login]
                await throttle.unlock(account, names, address)
            finally:
                await throttle.aclose()
            return user.username if user else canonical_username(login)
        finally:
            if redis is not None:
                await redis.aclose()
            await engine.dispose()

    try:
        name = asyncio.run(main())
    except LimiterUnavailable as exc:
        raise fail(f"the attempt counters can't be reached: {exc}") from None
    typer.echo(f"unlocked {name}" + (f" (and address {address})" if address else ""))


@users_app.command("reset-factors")
def reset_factors(
    login: str = typer.Argument(..., help="username or email"),
) -> None:
    """Unlock an account's second factors, locked after 100 failures in a row."""
    settings = _settings()

    async def main() -> str | None:
        engine = create_engine(settings.database_url)
        try:
            async with transaction(create_session_maker(engine)) as db:
                user = await find_for_login(db, login)
                if user is None:
                    return None
                await reset_factor_lock(
                    db, user.id, KINDS, actor=Actor(ip=None, user_agent="auth-server cli")
                )
                return user.username
        finally:
            await engine.dispose()

    name = asyncio.run(main())
    if name is None:
        raise fail(f"no user {login!r}")
    typer.echo(f"second factors unlocked for {name}")


@clients_app.command("create")
def create_client_command(
    client_id: str = typer.Argument(...),
    confidential: bool = typer.Option(False, "--confidential"),
    grant: list[str] = typer.Option(
        [], "--grant", help="authorization_code, refresh_token, client_credentials, password"
    ),
    redirect_uri: list[str] = typer.Option(
        [], "--redirect-uri", help="where codes go (exact match); repeatable"
    ),
    post_logout_redirect_uri: list[str] = typer.Option(
        [], "--post-logout-redirect-uri", help="where sign-out may return; repeatable"
    ),
    first_party: bool = typer.Option(
        False, "--first-party", help="ours: no consent page, may use the password grant"
    ),
    native: bool = typer.Option(
        False, "--native", help="a native app (RFC 8252): a loopback redirect's port may vary"
    ),
    resource: list[str] = typer.Option(
        [], "--resource", help="resources it may ask for (issue 20 gives them meaning)"
    ),
    scope: list[str] = typer.Option([], "--scope"),
) -> None:
    """Create an OAuth client. A confidential client's secret is printed once, on the last line."""
    # Each option may be repeated, or carry several values separated by spaces or commas.
    grants = [g for value in grant for g in value.replace(",", " ").split()]
    scopes = [s for value in scope for s in value.replace(",", " ").split()]
    if resource:
        raise fail("--resource is not supported yet: every client uses AUTH_AUDIENCE")
    settings = _settings()
    try:
        client, secret = _in_transaction(
            settings,
            lambda db: create_client(
                db,
                client_id=client_id,
                confidential=confidential,
                grant_types=grants,
                scopes=scopes,
                redirect_uris=redirect_uri,
                post_logout_redirect_uris=post_logout_redirect_uri,
                first_party=first_party,
                native=native,
            ),
        )
    except (ClientExists, InvalidClientSpec) as exc:
        raise fail(str(exc)) from None
    kind = "confidential" if confidential else "public"
    typer.echo(
        f"created {kind}{' first-party' if first_party else ''}"
        f"{' native' if native else ''} client {client.id}"
    )
    typer.echo(f"grants: {client.grant_types}; scopes: {client.scopes}")
    if client.redirect_uris:
        typer.echo(f"redirect URIs: {client.redirect_uris}")
    if client.post_logout_redirect_uris:
        typer.echo(f"post-logout redirect URIs: {client.post_logout_redirect_uris}")
    if secret is not None:
        typer.echo("client secret (shown once, store it now):")
        typer.echo(secret)


@keys_app.command("list")
def list_keys() -> None:
    """Every key with its state and dates."""
    for key in _with_key_store(_settings(), lambda store: store.list_keys()):
        dates = f"created {key.created_at:%Y-%m-%d %H:%M:%S}Z"
        if key.publish_until and key.state == "retiring":
            dates += f", published until {key.publish_until:%Y-%m-%d %H:%M:%S}Z"
        typer.echo(f"{key.kid}  {key.state:<8}  {dates}")


@keys_app.command("rotate")
def rotate_keys(
    emergency: bool = typer.Option(
        False, "--emergency", help="retire the active key at once: its tokens stop verifying"
    ),
) -> None:
    """Promote the next key to active and create a new next key."""
    result = _with_key_store(_settings(), lambda store: store.rotate(emergency=emergency))
    typer.echo(f"active: {result.active_kid}")
    typer.echo(f"next: {result.next_kid}")
    if result.previous_kid:
        typer.echo(f"{result.previous_state}: {result.previous_kid}")


# A kid is a base64url thumbprint and may begin with "-": take it as the argument, not an option.
@keys_app.command("retire", context_settings={"ignore_unknown_options": True})
def retire_key(kid: str = typer.Argument(..., help="the key id")) -> None:
    """Stop publishing a retiring key now."""
    _with_key_store(_settings(), lambda store: store.retire(kid))
    typer.echo(f"retired: {kid}")


def main() -> None:
    run_main(app)
