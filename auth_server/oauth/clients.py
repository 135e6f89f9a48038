"""OAuth clients: creation, and client authentication at the token, revoke and introspect
endpoints (RFC 6749 §2.3.1: HTTP Basic or `client_secret_post`; public clients send `client_id`)."""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Mapping
from urllib.parse import unquote_plus

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from auth_server.oauth.errors import InvalidClient, InvalidRequest
from auth_server.oauth.scopes import ALL_SCOPES
from auth_server.persistence.models import Client
from auth_server.users.passwords import PasswordHasher
from shared.db import utcnow

GRANT_TYPES = frozenset({"password", "refresh_token", "client_credentials"})


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
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidClient("malformed HTTP Basic credentials", basic=True) from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise InvalidClient("malformed HTTP Basic credentials", basic=True)
    # RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
    return unquote_plus(client_id), unquote_plus(secret)


async def authenticate_client(
    db: AsyncSession,
    hasher: PasswordHasher,
    *,
    authorization: str | None,
    params: Mapping[str, str],
) -> Client:
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
    used_basic = basic is not None
    client = await db.get(Client, client_id) if len(client_id) <= 128 else None
    if client is None:
        await hasher.verify(secret or "", None)  # same time as a wrong secret
        raise InvalidClient("unknown client or bad credentials", basic=used_basic)
    if client.is_confidential:
        if secret is None:
            raise InvalidClient("this client must authenticate", basic=used_basic)
        ok, _ = await hasher.verify(secret, client.secret_hash)
        if not ok:
            raise InvalidClient("unknown client or bad credentials", basic=used_basic)
    elif secret is not None:
        raise InvalidClient("a public client has no secret", basic=used_basic)
    return client


async def create_client(
    db: AsyncSession,
    hasher: PasswordHasher,
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
    wanted = scopes or sorted(ALL_SCOPES - {"admin"})
    if set(wanted) - ALL_SCOPES:
        raise InvalidClientSpec(f"unknown scopes: {', '.join(sorted(set(wanted) - ALL_SCOPES))}")
    secret = secrets.token_urlsafe(32) if confidential else None
    client = Client(
        id=client_id,
        secret_hash=await hasher.hash(secret) if secret else None,
        is_confidential=confidential,
        grant_types=" ".join(dict.fromkeys(grants)),
        scopes=" ".join(dict.fromkeys(wanted)),
        created_at=utcnow(),
    )
    db.add(client)
    try:
        await db.commit()
    except IntegrityError:
        await db.rollback()
        raise ClientExists(f"client {client_id!r} already exists") from None
    return client, secret


async def ensure_web_client(db: AsyncSession) -> None:
    """CONTRACT §2: migrating creates the public client `web` if it is absent."""
    if await db.get(Client, "web") is None:
        db.add(
            Client(
                id="web",
                secret_hash=None,
                is_confidential=False,
                grant_types="password refresh_token",
                scopes="notes:read notes:write",
                created_at=utcnow(),
            )
        )
        try:
            await db.commit()
        except IntegrityError:
            await db.rollback()
