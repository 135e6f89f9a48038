"""Users: registration, look-up by username or email, password changes. Flushes only: the
caller's unit of work commits."""

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
from shared.service.db import utcnow

__all__ = [
    "InvalidIdentifier",
    "UserExists",
    "WeakPassword",
    "WrongPassword",
    "change_password",
    "find_for_login",
    "register",
]


class UserExists(Exception):
    pass


class WrongPassword(Exception):
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
    """Create a user. Exactly one of several racing sign-ups with one name wins: the unique
    constraints decide (inside a savepoint, so the caller's transaction stays usable), and the
    losers get UserExists."""
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
    try:
        async with db.begin_nested():
            db.add(user)
    except IntegrityError:
        raise UserExists("the username or email is already registered") from None
    return user


async def change_password(
    hasher: PasswordHasher, user: User, *, current_password: str, new_password: str
) -> None:
    """Check the current password, then the policy, then store the new hash. Raises
    WrongPassword or WeakPassword; the caller ends the user's other sessions."""
    ok, _ = await hasher.verify(current_password, user.password_hash)
    if not ok:
        raise WrongPassword("the current password is wrong")
    check_password(new_password, username=user.username, email=user.email_normalized)
    user.password_hash = await hasher.hash(new_password)
    user.password_changed_at = utcnow()


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
