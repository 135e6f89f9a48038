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
from urllib.parse import unquote_plus, urlsplit

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from auth_server.oauth.errors import InvalidClient, InvalidRequest, TemporarilyUnavailable
from auth_server.oauth.scopes import ALL_SCOPES, IDENTITY_SCOPES, USER_SCOPES
from auth_server.persistence.models import Client
from auth_server.users.passwords import HashingBusy, PasswordHasher
from shared.service.db import checkpoint, utcnow

GRANT_TYPES = frozenset({"authorization_code", "password", "refresh_token", "client_credentials"})


@dataclass(frozen=True, slots=True)
class SeededClient:
    """A first-party public client that migrating creates when it is absent."""

    id: str
    grant_types: str
    scopes: str
    refresh_in_cookie: bool = False


PAGE_CLIENT_ID = "web-page"
PAGE_CLIENT_GRANTS = "authorization_code refresh_token"

# Migrating creates these public clients when they are absent (docs/guides/register-a-client.md):
# - `web`, for curl, API clients and Swagger UI: the password grant and the plain JSON refresh
#   token; it may ask for `admin` (granted only to admins who ask for it by name);
# - `web-page`, the web page's own (contract §8.1): code + PKCE only (the page never sees a
#   password), its refresh token only in an HttpOnly cookie, and one redirect URI
#   `{origin}/callback` and post-logout URI `{origin}/` per origin in AUTH_CORS_ORIGINS, kept in
#   step with that setting (`sync_page_client`).
SEEDED_CLIENTS = (
    SeededClient(
        id="web", grant_types="password refresh_token", scopes="notes:read notes:write admin"
    ),
    SeededClient(
        id=PAGE_CLIENT_ID,
        grant_types=PAGE_CLIENT_GRANTS,
        scopes="openid profile email notes:read notes:write",
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
    """A client as the endpoints see it (no ORM object)."""

    id: str
    secret_hash: str | None
    is_confidential: bool
    grant_types: str
    scopes: str
    refresh_in_cookie: bool
    redirect_uris: str = ""
    post_logout_redirect_uris: str = ""
    first_party: bool = False
    native: bool = False

    def allows(self, grant_type: str) -> bool:
        return grant_type in self.grant_types.split()

    def registered_redirects(self) -> tuple[str, ...]:
        return tuple(self.redirect_uris.split())

    def registered_post_logout_redirects(self) -> tuple[str, ...]:
        return tuple(self.post_logout_redirect_uris.split())


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
                    Client.redirect_uris,
                    Client.post_logout_redirect_uris,
                    Client.first_party,
                    Client.native,
                ).where(Client.id == client_id)
            )
        ).one_or_none()
        if row is None:
            return None
        record = ClientRecord(**row._asdict())
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

    async def find(self, db: AsyncSession, client_id: str) -> ClientRecord | None:
        """A client by id, unauthenticated (the authorization and end-session endpoints, where
        a client only names itself)."""
        if not client_id or len(client_id) > 128:
            return None
        return await self._directory.get(db, client_id)

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


LOOPBACK_REDIRECT_HOSTS = ("127.0.0.1", "[::1]")


def check_redirect_uri(uri: str, *, native: bool, what: str = "redirect URI") -> str:
    """A registrable redirect URI: absolute, no fragment (RFC 6749 §3.1.2), no userinfo, and
    `https` unless it is a loopback address (RFC 8252 §7.3) or a native app's private-use scheme
    (RFC 8252 §7.1, a reverse domain name with a dot)."""
    if not uri or len(uri) > 2000 or any(c.isspace() for c in uri) or not uri.isprintable():
        raise InvalidClientSpec(f"the {what} {uri[:80]!r} is not a URI")
    parts = urlsplit(uri)
    if parts.fragment or "#" in uri:
        raise InvalidClientSpec(f"the {what} {uri!r} must not have a fragment")
    if "@" in parts.netloc:
        raise InvalidClientSpec(f"the {what} {uri!r} must not have a user part")
    if parts.scheme == "https" and parts.hostname:
        return uri
    if parts.scheme == "http" and parts.hostname in ("127.0.0.1", "::1", "localhost"):
        return uri
    if native and "." in parts.scheme and not parts.netloc:
        return uri
    raise InvalidClientSpec(
        f"the {what} {uri!r} must be https, or http on a loopback address"
        + (", or a private-use scheme" if native else "")
    )


async def create_client(
    db: AsyncSession,
    *,
    client_id: str,
    confidential: bool,
    grant_types: list[str],
    scopes: list[str],
    redirect_uris: list[str] | None = None,
    post_logout_redirect_uris: list[str] | None = None,
    first_party: bool = False,
    native: bool = False,
) -> tuple[Client, str | None]:
    """Create a client; a confidential one gets a secret, returned once and stored hashed."""
    if not client_id or len(client_id) > 128 or not client_id.isprintable() or " " in client_id:
        raise InvalidClientSpec("the client id must be 1 to 128 printable characters, no spaces")
    redirects = list(dict.fromkeys(redirect_uris or []))
    default_grants = (
        ["authorization_code", "refresh_token"]
        if redirects
        else ["client_credentials"]
        if confidential
        else ["password", "refresh_token"]
    )
    grants = grant_types or default_grants
    unknown = set(grants) - GRANT_TYPES
    if unknown:
        raise InvalidClientSpec(f"unknown grant types: {', '.join(sorted(unknown))}")
    if "client_credentials" in grants and not confidential:
        raise InvalidClientSpec("client_credentials needs a confidential client")
    if native and confidential:
        raise InvalidClientSpec("a native app is a public client (RFC 8252 §8.4)")
    if "authorization_code" in grants and not redirects:
        raise InvalidClientSpec("authorization_code needs at least one --redirect-uri")
    if redirects and "authorization_code" not in grants:
        raise InvalidClientSpec("--redirect-uri needs the authorization_code grant")
    for uri in redirects:
        check_redirect_uri(uri, native=native)
    logouts = list(dict.fromkeys(post_logout_redirect_uris or []))
    for uri in logouts:
        check_redirect_uri(uri, native=native, what="post-logout redirect URI")
    if "authorization_code" in grants:
        default_scopes = sorted(USER_SCOPES | (IDENTITY_SCOPES - {"account"}))
    else:
        default_scopes = sorted(USER_SCOPES)
    wanted = scopes or default_scopes
    if set(wanted) - ALL_SCOPES:
        raise InvalidClientSpec(f"unknown scopes: {', '.join(sorted(set(wanted) - ALL_SCOPES))}")
    secret = secrets.token_urlsafe(32) if confidential else None
    client = Client(
        id=client_id,
        secret_hash=hash_client_secret(secret) if secret else None,
        is_confidential=confidential,
        grant_types=" ".join(dict.fromkeys(grants)),
        scopes=" ".join(dict.fromkeys(wanted)),
        redirect_uris=" ".join(redirects),
        post_logout_redirect_uris=" ".join(logouts),
        first_party=first_party,
        native=native,
        created_at=utcnow(),
    )
    try:
        async with db.begin_nested():
            db.add(client)
    except IntegrityError:
        raise ClientExists(f"client {client_id!r} already exists") from None
    return client, secret


def page_redirects(page_origins: list[str]) -> tuple[str, str]:
    """`web-page`'s redirect URIs and post-logout redirect URIs (contract §8.1): `{origin}/callback`
    and `{origin}/` for each origin the page is served from."""
    origins = [o.strip().rstrip("/") for o in page_origins if o.strip() and o.strip() != "*"]
    return (
        " ".join(f"{origin}/callback" for origin in origins),
        " ".join(f"{origin}/" for origin in origins),
    )


async def ensure_seeded_clients(db: AsyncSession, page_origins: list[str] | None = None) -> None:
    """Create each of SEEDED_CLIENTS that is absent (a second migrator racing us is fine), and
    bring `web-page` in step with the page's origins when they are given."""
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
                        first_party=True,
                        created_at=utcnow(),
                    )
                )
        except IntegrityError:
            pass  # created meanwhile by another replica's migration
    if page_origins is not None:
        await sync_page_client(db, page_origins)


async def sync_page_client(db: AsyncSession, page_origins: list[str]) -> None:
    """`web-page` as contract §8.1 has it: first-party, code + refresh only (a database seeded
    by an earlier release had the password grant), its URIs from AUTH_CORS_ORIGINS. Run at
    migrate and at serve time, so a changed setting takes effect on the next start."""
    redirects, logouts = page_redirects(page_origins)
    page = SEEDED_CLIENTS[1]
    await db.execute(
        update(Client)
        .where(Client.id == PAGE_CLIENT_ID)
        .values(
            grant_types=PAGE_CLIENT_GRANTS,
            scopes=page.scopes,
            redirect_uris=redirects,
            post_logout_redirect_uris=logouts,
            first_party=True,
            native=False,
            refresh_in_cookie=True,
        )
        .execution_options(synchronize_session=False)
    )
