"""Users: registration, look-up by username or email, password changes."""

from __future__ import annotations

import uuid

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from auth_server.persistence.models import User
from auth_server.users.normalize import (
    InvalidIdentifier,
    canonical_username,
    validate_email_address,
    validate_username,
)
from auth_server.users.passwords import PasswordHasher
from auth_server.users.policy import WeakPassword, check_password
from shared.db import utcnow

__all__ = ["InvalidIdentifier", "UserExists", "WeakPassword", "find_for_login", "register"]


class UserExists(Exception):
    pass


async def register(
    db: AsyncSession,
    hasher: PasswordHasher,
    *,
    username: str,
    email: str,
    password: str,
    is_admin: bool = False,
) -> User:
    """Create a user (and commit). Exactly one of several racing sign-ups with one name wins:
    the unique constraints decide, and the losers get UserExists."""
    name = validate_username(username)
    email_display, email_key = validate_email_address(email)
    check_password(password, username=name, email=email_key)
    taken = await db.scalar(
        select(User.id).where(or_(User.username == name, User.email_normalized == email_key))
    )
    if taken is not None:
        raise UserExists("the username or email is already registered")
    user = User(
        id=str(uuid.uuid4()),
        username=name,
        email=email_display,
        email_normalized=email_key,
        password_hash=await hasher.hash(password),
        is_admin=is_admin,
        created_at=utcnow(),
    )
    db.add(user)
    try:
        await db.commit()
    except IntegrityError:
        await db.rollback()
        raise UserExists("the username or email is already registered") from None
    return user


async def find_for_login(db: AsyncSession, login: str) -> User | None:
    """The user whose username or email is `login` (compared in canonical form)."""
    if len(login) > 320:
        return None
    name = canonical_username(login)
    return await db.scalar(
        select(User).where(
            or_(User.username == name, User.email_normalized == login.strip().casefold())
        )
    )
