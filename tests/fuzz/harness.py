"""Both services in-process, seeded and authenticated, for schemathesis (issue 9, schema fuzzing).

`make test` (tests/fuzz) and `make fuzz` (scripts/fuzz.py) share this: each builds the two apps
on fresh, migrated SQLite databases, loads their OpenAPI documents with
`schemathesis.openapi.from_asgi`, and registers one auth provider per schema that gives every
operation the credentials it declares:

- the notes API: a bearer token with `notes:read notes:write`, signed by a key the resource server
  pins (`StaticKeySet`), as tests/integration/resource does;
- the auth server: a user's bearer token for /users/me and /sessions, an admin's token (scope
  `notes:read notes:write admin`) for /admin, a confidential client's HTTP Basic for /introspect
  and /revocations. Tokens are cached; after any DELETE (the fuzzer learns real session ids and
  subs from the answers, and ends those sessions) the fuzzer's users log in afresh.

Why in-process: schemathesis 4 runs an ASGI app's lifespan itself (one event loop thread for the
whole process) and sends each case straight to the app: no sockets, no server processes to start
and wait for, no port to find, and a 500 comes with its traceback. That keeps the `make test`
part within its budget on two cores. What it can't see (uvicorn's own HTTP parsing, TLS) is
covered by tests/e2e and the hand-written hostile cases.

The throttles are raised so that the fuzzer's many failed logins and sign-ups don't turn every
later case into a 429 (429 is still declared wherever it can happen).
"""

from __future__ import annotations

import base64
import concurrent.futures
import logging
import secrets
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import schemathesis
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import strategies as st
from schemathesis.python import asgi

from auth_server.settings import AuthSettings
from resource_server.api.openapi import CURSOR_FORMAT
from resource_server.notes.service import encode_cursor
from resource_server.persistence.database import migrate as migrate_resource
from resource_server.settings import ResourceSettings
from shared.keys import StaticKeySet, VerificationKey
from tests.databases import TEST_KEK, migrate_auth, run_sync

log = logging.getLogger("tests.fuzz")
PASSWORD = "fuzzing is a long unusual passphrase"
ADMIN_SCOPE = "notes:read notes:write admin"
USER_SCOPE = "notes:read notes:write"
RESOURCE_KID = "fuzz-key"
FAST_HASHING: dict[str, Any] = {
    "password_hash_time_cost": 1,
    "password_hash_memory_cost": 1024,
    "password_hash_parallelism": 1,
}
# High enough that a run never reaches them: AUTH_LOGIN_FAILURE_LIMIT, AUTH_LOGIN_IP_LIMIT,
# AUTH_LOGIN_ACCOUNT_LIMIT, AUTH_SESSION_RATE_LIMIT, AUTH_CLIENT_RATE_LIMIT,
# AUTH_REGISTRATION_IP_LIMIT.
NO_THROTTLES: dict[str, Any] = {
    "login_failure_limit": 1_000_000,
    "login_ip_limit": 1_000_000,
    "login_account_limit": 1_000_000,
    "session_rate_limit": 1_000_000,
    "client_rate_limit": 1_000_000,
    "registration_ip_limit": 1_000_000,
}


@dataclass
class Templates:
    """Migrated SQLite databases, copied for each app (migrating costs seconds, copying nothing)."""

    auth: Path
    resource: Path

    @classmethod
    def build(cls, directory: Path) -> Templates:
        directory.mkdir(parents=True, exist_ok=True)
        auth, resource = directory / "auth-template.db", directory / "resource-template.db"
        # In a thread: the migrations run an event loop of their own, and callers may be in one.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(migrate_auth, f"sqlite+aiosqlite:///{auth}").result()
            pool.submit(migrate_resource, f"sqlite+aiosqlite:///{resource}").result()
        return cls(auth, resource)

    def copy(self, which: str, target: Path) -> str:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(getattr(self, which), target)
        return f"sqlite+aiosqlite:///{target}"


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


@dataclass
class AuthServerAccounts:
    """Who the fuzzer is at the auth server, and the tokens it holds."""

    app: Any
    username: str
    admin_username: str
    client_id: str
    client_secret: str
    tokens: dict[str, str] = field(default_factory=dict)

    def login(self, username: str, scope: str = USER_SCOPE) -> str:
        form = {
            "grant_type": "password",
            "client_id": "web",
            "username": username,
            "password": PASSWORD,
            "scope": scope,
        }
        with asgi.get_client(self.app) as client:
            response = client.post("/token", data=form)
        if response.status_code != 200:
            raise RuntimeError(f"fuzz harness: login of {username} failed: {response.text}")
        return str(response.json()["access_token"])

    def headers_for(self, method: str, path: str) -> dict[str, str]:
        """The credentials an operation declares (none for the OAuth endpoints, whose clients
        authenticate in the form or with Basic, which the fuzzer generates itself)."""
        if path in ("/introspect", "/revocations"):
            return {"Authorization": basic(self.client_id, self.client_secret)}
        who = "admin" if path.startswith("/admin/") else "user"
        if not path.startswith(("/admin/", "/users/me", "/sessions", "/userinfo")):
            return {}
        if method == "DELETE":
            # Ending sessions (one, all of mine, all of a user's: the fuzzer learns real session
            # ids and subs from the responses) may end the ones held here: log in afresh for it,
            # and again for whatever comes next.
            self.tokens.clear()
        return {"Authorization": f"Bearer {self._cached(who)}"}

    def _cached(self, who: str) -> str:
        if who not in self.tokens:
            self.tokens[who] = (
                self.login(self.admin_username, ADMIN_SCOPE)
                if who == "admin"
                else self.login(self.username)
            )
        return self.tokens[who]


def _seed_auth(settings: AuthSettings, username: str, admin: str, client_id: str) -> str:
    """The fuzzer's users (one an admin) and a confidential client; returns the client secret."""
    from auth_server.oauth.clients import create_client
    from auth_server.users.passwords import PasswordHasher
    from auth_server.users.service import new_user, register
    from shared.service.db import create_engine, create_session_maker, transaction

    async def seed() -> str:
        engine = create_engine(settings.database_url)
        hasher = PasswordHasher(settings)
        try:
            async with transaction(create_session_maker(engine)) as db:
                for name, is_admin in ((username, False), (admin, True)):
                    await register(
                        db,
                        hasher,
                        new_user(
                            username=name,
                            email=f"{name}@example.com",
                            password=PASSWORD,
                            is_admin=is_admin,
                        ),
                    )
                _, secret = await create_client(
                    db,
                    client_id=client_id,
                    confidential=True,
                    grant_types=["client_credentials"],
                    scopes=["notes:read", "revocations:read"],
                )
        finally:
            await engine.dispose()
        assert secret is not None
        return secret

    return run_sync(seed)


def auth_settings(database_url: str, var_dir: Path, **overrides: Any) -> AuthSettings:
    return AuthSettings(
        _env_file=None,
        environment="test",
        database_url=database_url,
        key_encryption_key=TEST_KEK,
        var_dir=var_dir,
        **FAST_HASHING,
        **NO_THROTTLES,
        **overrides,
    )


def resource_settings(database_url: str, var_dir: Path, **overrides: Any) -> ResourceSettings:
    return ResourceSettings(
        _env_file=None,
        environment="test",
        database_url=database_url,
        var_dir=var_dir,
        **overrides,
    )


@dataclass
class FuzzTarget:
    """One service under fuzzing: its app, its schemathesis schema, and how it authenticates."""

    name: str
    app: Any
    schema: Any
    credentials: Callable[[str, str], dict[str, str]]


def _with_credentials(schema: Any, credentials: Callable[[str, str], dict[str, str]]) -> None:
    # No caching by schemathesis (its default hands every operation the first answer for 300 s,
    # and replays 401s): each operation gets what it declares, and AuthServerAccounts caches.
    @schema.auth(refresh_interval=None)
    class Credentials:
        def get(self, case: Any, ctx: Any) -> dict[str, str]:
            return credentials(case.method.upper(), case.operation.path)

        def set(self, case: Any, data: dict[str, str], ctx: Any) -> None:
            case.headers = {**(case.headers or {}), **data}


def notes_cursors() -> st.SearchStrategy[str]:
    """The notes API's cursors are opaque (format `notes-cursor`): a client only sends back one
    it was given, so schema-valid ones are those the server makes."""
    return st.integers(min_value=0, max_value=10**18 - 1).map(encode_cursor)


schemathesis.openapi.format(CURSOR_FORMAT, notes_cursors())


class AsServed:
    """The app as a server runs it: an exception that escapes after Starlette's error middleware
    has sent its 500 is logged, not raised into the client (schemathesis' ASGI transport would
    otherwise report an error instead of the 500 the client sees)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        except Exception:
            log.exception("fuzz: the app raised (the client got a 500)")


def load_schema(app: Any, config: Any | None = None) -> Any:
    """The app's OpenAPI document, loaded through the app (this starts its lifespan)."""
    return schemathesis.openapi.from_asgi("/openapi.json", AsServed(app), config=config)


def build_auth_target(
    templates: Templates, directory: Path, config: Any | None = None, **overrides: Any
) -> FuzzTarget:
    from auth_server.main import create_app

    suffix = secrets.token_hex(3)
    settings = auth_settings(
        templates.copy("auth", directory / "auth.db"), directory / "auth-var", **overrides
    )
    username, admin, client_id = f"fuzzer{suffix}", f"fuzzadmin{suffix}", f"fuzz-{suffix}"
    secret = _seed_auth(settings, username, admin, client_id)
    app = create_app(settings)
    schema = load_schema(app, config)
    accounts = AuthServerAccounts(app, username, admin, client_id, secret)
    _with_credentials(schema, accounts.headers_for)
    return FuzzTarget("auth server", app, schema, accounts.headers_for)


def build_resource_target(
    templates: Templates, directory: Path, config: Any | None = None, **overrides: Any
) -> FuzzTarget:
    from resource_server.main import create_app

    settings = resource_settings(
        templates.copy("resource", directory / "resource.db"),
        directory / "resource-var",
        **overrides,
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    keys = StaticKeySet([VerificationKey(RESOURCE_KID, key.public_key(), "RS256")])
    app = create_app(settings, key_source=keys, revocation_feed=False)
    now = int(time.time())
    token = jwt.encode(
        {
            "iss": settings.issuer,
            "sub": f"fuzzer-{secrets.token_hex(3)}",
            "aud": settings.audience,
            "exp": now + 6 * 3600,  # outlives the longest `make fuzz`
            "iat": now,
            "jti": uuid.uuid4().hex,
            "client_id": "web",
            "scope": USER_SCOPE,
            "sid": "fuzz-session",
        },
        key,
        algorithm="RS256",
        headers={"kid": RESOURCE_KID, "typ": "at+jwt"},
    )
    schema = load_schema(app, config)

    def credentials(method: str, path: str) -> dict[str, str]:
        protected = path == "/me" or path.startswith("/notes")
        return {"Authorization": f"Bearer {token}"} if protected else {}

    _with_credentials(schema, credentials)
    return FuzzTarget("resource server", app, schema, credentials)


@contextmanager
def running_lifespans() -> Iterator[None]:
    """Ends the lifespans schemathesis started (engines, schedules) when the block is left."""
    try:
        yield
    finally:
        asgi.shutdown_lifespans()


def documented_operations(service: str) -> list[tuple[str, str]]:
    """(method, path) of every operation in a service's document, read without starting it
    (building an app and its document touches no database): pytest parametrizes with these."""
    if service == "auth":
        from auth_server.main import create_app as create_auth_app

        app = create_auth_app(auth_settings("sqlite+aiosqlite://", Path("var")))
    else:
        from resource_server.main import create_app as create_resource_app

        app = create_resource_app(resource_settings("sqlite+aiosqlite://", Path("var")))
    return [
        (method.upper(), path) for path, item in app.openapi()["paths"].items() for method in item
    ]
