"""OAuth clients: creation, and client authentication at the token, revoke and introspect
endpoints (RFC 6749 §2.3.1: HTTP Basic or `client_secret_post`; public clients send `client_id`)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote_plus

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from auth_server.oauth.errors import InvalidClient, InvalidRequest, TemporarilyUnavailable
from auth_server.oauth.scopes import ALL_SCOPES, USER_SCOPES
from auth_server.persistence.models import Client
from auth_server.users.passwords import HashingBusy, PasswordHasher
from shared.service.db import checkpoint, utcnow

GRANT_TYPES = frozenset({"password", "refresh_token", "client_credentials"})


@dataclass(frozen=True, slots=True)
class SeededClient:
    """A public client that migrating creates when it is absent."""

    id: str
    grant_types: str
    scopes: str
    refresh_in_cookie: bool = False


PAGE_CLIENT_ID = "web-page"

# Migrating creates these public clients when they are absent (docs/guides/register-a-client.md):
# - `web`, for curl, API clients and Swagger UI: the plain JSON refresh token; it may ask for
#   `admin` (granted only to admins who ask for it by name);
# - `web-page`, the web page's own: its refresh token lives only in an HttpOnly cookie.
SEEDED_CLIENTS = (
    SeededClient(
        id="web", grant_types="password refresh_token", scopes="notes:read notes:write admin"
    ),
    SeededClient(
        id=PAGE_CLIENT_ID,
        grant_types="password refresh_token",
        scopes="notes:read notes:write",
        refresh_in_cookie=True,
    ),
)


class ClientExists(Exception):
    pass


class InvalidClientSpec(ValueError):
    pass


def _basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except ValueError:
        # binascii.Error (bad base64) and UnicodeDecodeError (not UTF-8) are ValueErrors, and
        # so is what b64decode raises for text with a non-ASCII character in it (header bytes
        # above 0x7f arrive as Latin-1 characters).
        raise InvalidClient("malformed HTTP Basic credentials", basic=True) from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise InvalidClient("malformed HTTP Basic credentials", basic=True)
    # RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
    return unquote_plus(client_id), unquote_plus(secret)


SECRET_SCHEME = "sha256$"


def hash_client_secret(secret: str) -> str:
    """Client secrets are 256 random bits: a plain SHA-256 is enough (no guessing to slow down),
    and checking one costs microseconds instead of an Argon2 run."""
    return SECRET_SCHEME + hashlib.sha256(secret.encode()).hexdigest()


async def secret_matches(
    db: AsyncSession, hasher: PasswordHasher, secret: str, stored: str | None
) -> bool:
    if stored is None:
        return False
    if stored.startswith(SECRET_SCHEME):
        return hmac.compare_digest(hash_client_secret(secret), stored)
    # Argon2 runs outside any transaction: the client was read in `db`'s (on SQLite, holding
    # the write lock), so the unit of work so far is committed first.
    await checkpoint(db)
    try:
        ok, _ = await hasher.verify(secret, stored)  # secrets stored by earlier releases (Argon2)
    except HashingBusy as busy:
        raise TemporarilyUnavailable(busy.retry_after) from None
    return ok


@dataclass(frozen=True, slots=True)
class ClientRecord:
    """A client as the token, revoke and introspect endpoints see it (no ORM object)."""

    id: str
    secret_hash: str | None
    is_confidential: bool
    grant_types: str
    scopes: str
    refresh_in_cookie: bool


class ClientDirectory:
    """Clients by id, each kept `ttl` seconds in memory: every token request needs its client,
    and clients change rarely (`auth-server clients create`); a new client is read at once."""

    def __init__(self, ttl: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[str, tuple[float, ClientRecord]] = {}

    async def get(self, db: AsyncSession, client_id: str) -> ClientRecord | None:
        now = self._clock()
        hit = self._cache.get(client_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        row = (
            await db.execute(
                select(
                    Client.id,
                    Client.secret_hash,
                    Client.is_confidential,
                    Client.grant_types,
                    Client.scopes,
                    Client.refresh_in_cookie,
                ).where(Client.id == client_id)
            )
        ).one_or_none()
        if row is None:
            return None
        record = ClientRecord(*row)
        if len(self._cache) > MAX_CACHED_CLIENTS:
            self._cache.clear()
        self._cache[client_id] = (now + self._ttl, record)
        return record


MAX_CACHED_CLIENTS = 10_000


class ClientAuthenticator:
    """Client authentication for the token, revoke, introspect and feed endpoints."""

    def __init__(self, hasher: PasswordHasher, directory: ClientDirectory) -> None:
        self._hasher = hasher
        self._directory = directory

    async def authenticate(
        self, db: AsyncSession, *, authorization: str | None, params: Mapping[str, str]
    ) -> ClientRecord:
        return await authenticate_client(
            db,
            self._hasher,
            authorization=authorization,
            params=params,
            directory=self._directory,
        )


async def authenticate_client(
    db: AsyncSession,
    hasher: PasswordHasher,
    *,
    authorization: str | None,
    params: Mapping[str, str],
    directory: ClientDirectory | None = None,
) -> ClientRecord:
    """The authenticated client, or InvalidClient (401 + WWW-Authenticate when Basic was used)."""
    basic = _basic_credentials(authorization)
    client_id: str
    secret: str | None
    form_id, form_secret = params.get("client_id"), params.get("client_secret")
    if basic is not None and form_secret is not None:
        # RFC 6749 §2.3: the client MUST NOT use more than one authentication method.
        raise InvalidRequest("use one client authentication method only")
    if basic is not None:
        client_id, secret = basic[0], basic[1]
        if form_id is not None and form_id != client_id:
            raise InvalidRequest("client_id does not match the authenticated client")
    else:
        if not form_id:
            raise InvalidClient("client authentication is required")
        client_id, secret = form_id, form_secret
    used_basic, credential = basic is not None, secret is not None
    directory = directory or ClientDirectory(ttl=0)
    client = await directory.get(db, client_id) if len(client_id) <= 128 else None
    if client is None:
        # Client ids are not secrets: an unknown one is answered at once, with no hashing work
        # that a flood of made-up ids could turn against us.
        raise InvalidClient(
            "unknown client or bad credentials", basic=used_basic, credential=credential
        )
    if client.is_confidential:
        if secret is None:
            raise InvalidClient("this client must authenticate", basic=used_basic)
        if not await secret_matches(db, hasher, secret, client.secret_hash):
            raise InvalidClient(
                "unknown client or bad credentials", basic=used_basic, credential=True
            )
    elif secret is not None:
        raise InvalidClient("a public client has no secret", basic=used_basic, credential=True)
    return client


async def create_client(
    db: AsyncSession,
    *,
    client_id: str,
    confidential: bool,
    grant_types: list[str],
    scopes: list[str],
) -> tuple[Client, str | None]:
    """Create a client; a confidential one gets a secret, returned once and stored hashed."""
    if not client_id or len(client_id) > 128 or not client_id.isprintable() or " " in client_id:
        raise InvalidClientSpec("the client id must be 1 to 128 printable characters, no spaces")
    grants = grant_types or (
        ["client_credentials"] if confidential else ["password", "refresh_token"]
    )
    unknown = set(grants) - GRANT_TYPES
    if unknown:
        raise InvalidClientSpec(f"unknown grant types: {', '.join(sorted(unknown))}")
    if "client_credentials" in grants and not confidential:
        raise InvalidClientSpec("client_credentials needs a confidential client")
    wanted = scopes or sorted(USER_SCOPES)
    if set(wanted) - ALL_SCOPES:
        raise InvalidClientSpec(f"unknown scopes: {', '.join(sorted(set(wanted) - ALL_SCOPES))}")
    secret = secrets.token_urlsafe(32) if confidential else None
    client = Client(
        id=client_id,
        secret_hash=hash_client_secret(secret) if secret else None,
        is_confidential=confidential,
        grant_types=" ".join(dict.fromkeys(grants)),
        scopes=" ".join(dict.fromkeys(wanted)),
        created_at=utcnow(),
    )
    try:
        async with db.begin_nested():
            db.add(client)
    except IntegrityError:
        raise ClientExists(f"client {client_id!r} already exists") from None
    return client, secret


async def ensure_seeded_clients(db: AsyncSession) -> None:
    """Create each of SEEDED_CLIENTS that is absent (a second migrator racing us is fine)."""
    for seed in SEEDED_CLIENTS:
        if await db.get(Client, seed.id) is not None:
            continue
        try:
            async with db.begin_nested():
                db.add(
                    Client(
                        id=seed.id,
                        secret_hash=None,
                        is_confidential=False,
                        grant_types=seed.grant_types,
                        scopes=seed.scopes,
                        refresh_in_cookie=seed.refresh_in_cookie,
                        created_at=utcnow(),
                    )
                )
        except IntegrityError:
            pass  # created meanwhile by another replica's migration
