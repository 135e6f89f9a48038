"""Users: registration, look-up by username or email, password changes. Flushes only: the
caller's unit of work commits, except that no password hash ever runs inside it.

One login string names at most one account: every username and email is written to
`login_names` in one canonical form (`login_key`), unique across both kinds, in the transaction
that adds the user; a login looks the string up there. So `victim@example.com` can't be another
account's username, whichever signed up first (409 for the second), and two racing sign-ups
can't both take it (the database's unique key decides).

An Argon2 hash takes a core for a tenth of a second or more: run inside a transaction, it holds
a pooled connection (PostgreSQL) or the whole database's write lock (SQLite) for that long, and
every other request waits. So every function here that hashes first checks what needs no hash
(the password policy, a name already taken), then commits the unit of work so far
(`checkpoint`: the connection goes back to the pool), hashes, and writes in a new transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from auth_server.persistence.models import LoginName, User
from auth_server.users.normalize import (
    LOGIN_KEY_MAX,
    InvalidIdentifier,
    login_key,
    validate_email_address,
    validate_username,
)
from auth_server.users.passwords import HashingBusy, PasswordHasher
from auth_server.users.policy import WeakPassword, check_password
from auth_server.users.throttle import LoginThrottle, account_key
from shared.service.db import checkpoint, utcnow

__all__ = [
    "InvalidIdentifier",
    "NewUser",
    "PasswordChangedMeanwhile",
    "UserExists",
    "WeakPassword",
    "WrongPassword",
    "change_password",
    "find_for_login",
    "new_user",
    "register",
]


class UserExists(Exception):
    pass


class WrongPassword(Exception):
    pass


class PasswordChangedMeanwhile(Exception):
    """Another change of the same password committed while this one was being hashed."""


@dataclass(frozen=True, slots=True)
class NewUser:
    """A sign-up whose values passed every check that needs no database and no hash."""

    username: str  # canonical
    email: str  # as email-validator normalizes it
    email_key: str  # its case-folded uniqueness key
    password: str = field(repr=False)
    is_admin: bool = False

    def login_names(self) -> dict[str, str]:
        """{login key: "username" or "email"}: one name when both are the same string."""
        names = {login_key(self.username): "username"}
        names.setdefault(login_key(self.email), "email")
        return names


def new_user(*, username: str, email: str, password: str, is_admin: bool = False) -> NewUser:
    """Validate a sign-up: InvalidIdentifier or WeakPassword, before any database work."""
    name = validate_username(username)
    email_display, email_key = validate_email_address(email)
    check_password(password, username=name, email=email_key)
    return NewUser(name, email_display, email_key, password, is_admin)


async def register(db: AsyncSession, hasher: PasswordHasher, new: NewUser) -> User:
    """Create a user. A name already taken is refused before any hash; the hash runs outside
    any transaction (`db`'s work so far is committed first). Exactly one of several racing
    sign-ups with one name wins: the unique constraints decide (inside a savepoint, so the
    caller's transaction stays usable), and the losers get UserExists. HashingBusy when the
    hashing pool is full."""
    names = new.login_names()
    taken = await db.scalar(select(LoginName.user_id).where(LoginName.name.in_(names)).limit(1))
    if taken is not None:
        raise UserExists("the username or email is already registered")
    await checkpoint(db)
    password_hash = await hasher.hash(new.password)
    user = User(
        id=str(uuid.uuid4()),
        username=new.username,
        email=new.email,
        email_normalized=new.email_key,
        password_hash=password_hash,
        is_admin=new.is_admin,
        created_at=utcnow(),
    )
    try:
        async with db.begin_nested():
            db.add(user)
            await db.flush()
            db.add_all(LoginName(name=n, user_id=user.id, kind=k) for n, k in names.items())
    except IntegrityError:
        raise UserExists("the username or email is already registered") from None
    return user


async def change_password(
    db: AsyncSession,
    hasher: PasswordHasher,
    throttle: LoginThrottle,
    user: User,
    *,
    current_password: str,
    new_password: str,
    ip: str | None,
) -> None:
    """Check the new password's policy (no hash: WeakPassword, nothing counted), then the
    current password, counted as a login of the account (Throttled, WrongPassword), then store
    the new hash. Both hashes run outside any transaction. HashingBusy when the hashing pool is
    full (nothing counted); ThrottleUnavailable when the counters can't be reached;
    PasswordChangedMeanwhile when another change won the race. The caller ends the user's other
    sessions."""
    check_password(new_password, username=user.username, email=user.email_normalized)
    current_hash = user.password_hash
    async with throttle.attempt(account_key(user.id, user.username), user.username, ip, db=db) as (
        attempt
    ):
        # The attempt is counted and committed; on SQLite it was counted in this transaction.
        await checkpoint(db)
        try:
            ok, _ = await hasher.verify(current_password, current_hash)
        except HashingBusy:
            await throttle.refund(attempt, db=db)  # nothing was tried
            raise
        if not ok:
            raise WrongPassword("the current password is wrong")
        await throttle.succeeded(attempt, db=db)
    await checkpoint(db)  # the counts given back (SQLite: in this transaction) are committed
    new_hash = await hasher.hash(new_password)
    # Only over the hash that was checked: a change that committed meanwhile wins.
    changed = await db.execute(
        update(User)
        .where(User.id == user.id, User.password_hash == current_hash)
        .values(password_hash=new_hash, password_changed_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if changed.rowcount != 1:  # type: ignore[attr-defined]
        raise PasswordChangedMeanwhile("the password was changed meanwhile")


async def find_for_login(db: AsyncSession, login: str) -> User | None:
    """The one user whose username or email is `login` (compared as `login_key`s)."""
    if len(login) > LOGIN_KEY_MAX:
        return None
    return await db.scalar(
        select(User)
        .join(LoginName, LoginName.user_id == User.id)
        .where(LoginName.name == login_key(login))
    )
