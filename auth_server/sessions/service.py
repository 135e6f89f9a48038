"""Login sessions and their refresh tokens (RFC 6749 §6, RFC 9700 §4.14).

A refresh token is 256 random bits; only its SHA-256 is stored. Every use rotates it through one
conditional UPDATE, so of two racing requests exactly one rotates. The token that was just
rotated may be presented again within the grace window and gets the same answer; any other reuse
is theft and ends the whole session.

This module returns domain results (`Rotated`, `Replayed`); issuing the access token and shaping
the RFC 6749 response is the oauth package's job. Everything here only flushes: the caller's
unit of work commits.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from auth_server import audit
from auth_server.persistence.models import LoginSession
from auth_server.revocations import (
    RevocationKind,
    RevocationPublisher,
    jti_revoked,
    kid_revoked,
    user_not_before,
)
from auth_server.sessions.authentication import Authentication
from auth_server.sessions.grace import GraceCipher
from auth_server.sessions.repository import (
    PostgresRotation,
    RefreshTokenRecord,
    RefreshTokenRepository,
    SessionRecord,
    hash_refresh_token,
    new_refresh_token,
)
from auth_server.settings import AuthSettings, token_horizon
from shared.denylist import issued_before
from shared.service.db import after_commit, utcnow

USER_AGENT_MAX = 512
GRACE_ANSWER_WAIT = 1.0  # seconds a replay waits for a concurrent winner's stored answer


class RefreshFailed(Exception):
    """invalid_grant, with a reason for the audit trail (never shown in detail to the client)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ScopeWidened(Exception):
    """A refresh asked for more than the session holds (RFC 6749 §6: it may only narrow)."""


@dataclass(frozen=True, slots=True)
class StartedSession:
    session_id: str
    refresh_token: str


BROWSER = "browser"
CLIENT = "client"


def new_session_id() -> str:
    return secrets.token_urlsafe(16)


MAX_BROWSER_SECRET_LENGTH = 128


@dataclass(frozen=True, slots=True)
class BrowserSession:
    """The person's sign-in at the hosted pages (contract §8.3)."""

    id: str
    user_id: str
    authentication: Authentication
    expires_at: dt.datetime


@dataclass(frozen=True, slots=True)
class StartedBrowserSession:
    session: BrowserSession
    secret: str  # the cookie's value; only its SHA-256 is stored


@dataclass(frozen=True, slots=True)
class RotationPlan:
    """What a rotation grants: the caller issues the access token for it (`AnswerFor`)."""

    session: SessionRecord
    scope: str
    refresh_token: str  # the one that replaces the presented token


@dataclass(frozen=True, slots=True)
class Replayed:
    """The just-rotated token came again within the grace window: the same answer as before."""

    answer: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Client:
    """Who is acting, for the audit trail and the grace-window checks."""

    ip: str | None
    user_agent: str | None


@dataclass(frozen=True, slots=True)
class _RotationRequest:
    """What `SessionService.rotate` was asked, as both of its paths read it."""

    token: str
    client_id: str
    requested_scope: frozenset[str] | None
    ip: str | None
    user_agent: str | None
    answer_for: AnswerFor
    expected_session: str | None
    admit: Admit | None


# Called with the session of a refresh token once it is found and valid, before anything is
# spent: it may refuse (rate limits raise their own error).
Admit = Callable[[SessionRecord], Awaitable[None]]
# The oauth layer's part of a rotation: issue the access token for the plan and shape the
# answer; returns (the answer, the kid that signed it). Its second argument is the transaction
# to check the signing key in, or None when the one-statement rotation checks it itself.
AnswerFor = Callable[["RotationPlan", AsyncSession | None], Awaitable[tuple[dict[str, Any], str]]]


class SessionService:
    def __init__(
        self,
        settings: AuthSettings,
        *,
        grace: GraceCipher,
        revocations: RevocationPublisher,
        tokens: RefreshTokenRepository | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
        one_statement_pool: Any | None = None,
        routine: audit.RoutineCounts | None = None,
    ) -> None:
        """`one_statement_pool`: on PostgreSQL, the asyncpg pool (`open_rotation_pool`) whose
        connections rotate an unused refresh token in one statement outside any transaction
        (SQLite takes the transactional path). `routine`: where routine rotations are counted
        for the audit trail (audit.RoutineCounts), instead of a row each."""
        self._settings = settings
        self._routine = routine
        self._pool = one_statement_pool
        self._grace = grace
        self._revocations = revocations
        self._tokens = tokens or RefreshTokenRepository()
        self._clock = clock

    def now(self) -> dt.datetime:
        return self._clock()

    # -- starting and rotating -------------------------------------------------------------

    async def start(
        self,
        db: AsyncSession,
        *,
        user_id: str,
        client_id: str,
        scope: str,
        ip: str | None,
        user_agent: str | None,
        authentication: Authentication | None = None,
        parent_id: str | None = None,
        refresh: bool = True,
        session_id: str | None = None,
    ) -> StartedSession:
        """A new client session, with its first refresh token unless `refresh` is False (a
        client without the refresh grant: the session still names its access tokens' `sid`,
        so ending it revokes them). `parent_id`: the browser session it was signed in through."""
        now = self._clock()
        sid = session_id or new_session_id()
        expires = now + dt.timedelta(seconds=self._settings.refresh_token_ttl)
        db.add(
            LoginSession(
                id=sid,
                user_id=user_id,
                client_id=client_id,
                kind=CLIENT,
                parent_id=parent_id,
                scope=scope,
                created_at=now,
                last_used_at=now,
                expires_at=expires,
                auth_time=authentication.auth_time if authentication else None,
                amr=authentication.amr_text if authentication else None,
                acr=authentication.acr if authentication else None,
                ip=ip,
                user_agent=(user_agent or "")[:USER_AGENT_MAX] or None,
            )
        )
        await db.flush()
        token = ""
        if refresh:
            token = await self._tokens.add(
                db, session_id=sid, scope=scope, now=now, expires_at=expires
            )
        return StartedSession(session_id=sid, refresh_token=token)

    # -- browser sessions ------------------------------------------------------------------

    async def start_browser(
        self,
        db: AsyncSession,
        *,
        user_id: str,
        authentication: Authentication,
        ip: str | None,
        user_agent: str | None,
    ) -> StartedBrowserSession:
        """A new browser session; its cookie's value is returned once and stored hashed."""
        now = self._clock()
        sid = new_session_id()
        secret = secrets.token_urlsafe(32)  # 256 bits
        expires = now + dt.timedelta(seconds=self._settings.refresh_token_ttl)
        db.add(
            LoginSession(
                id=sid,
                user_id=user_id,
                client_id=None,
                kind=BROWSER,
                secret_hash=hash_refresh_token(secret),
                scope="",
                created_at=now,
                last_used_at=now,
                expires_at=expires,
                auth_time=authentication.auth_time,
                amr=authentication.amr_text,
                acr=authentication.acr,
                ip=ip,
                user_agent=(user_agent or "")[:USER_AGENT_MAX] or None,
            )
        )
        await db.flush()
        return StartedBrowserSession(BrowserSession(sid, user_id, authentication, expires), secret)

    async def find_browser(self, db: AsyncSession, secret: str | None) -> BrowserSession | None:
        """The live browser session whose cookie this is, or None."""
        if not secret or len(secret) > MAX_BROWSER_SECRET_LENGTH:
            return None
        row = await db.scalar(
            select(LoginSession).where(
                LoginSession.secret_hash == hash_refresh_token(secret),
                LoginSession.kind == BROWSER,
            )
        )
        return self._live_browser(row)

    async def browser_of(self, db: AsyncSession, sid: str) -> BrowserSession | None:
        """The live browser session `sid` is, or is a child of (an id_token's `sid`)."""
        row = await db.get(LoginSession, sid)
        if row is not None and row.kind != BROWSER and row.parent_id is not None:
            row = await db.get(LoginSession, row.parent_id)
        return self._live_browser(row)

    def _live_browser(self, row: LoginSession | None) -> BrowserSession | None:
        if row is None or row.kind != BROWSER or row.ended_at is not None:
            return None
        if row.expires_at <= self._clock():
            return None
        authentication = Authentication.stored(row.auth_time, row.amr, row.acr)
        if authentication is None:  # pragma: no cover - browser sessions always have one
            return None
        return BrowserSession(row.id, row.user_id, authentication, row.expires_at)

    async def end_browser(
        self,
        db: AsyncSession,
        sid: str,
        *,
        reason: str,
        ip: str | None,
        user_agent: str | None,
    ) -> int:
        """End a browser session and every client session signed in through it (contract
        §8.3); each gets its `sid` revocation event, so resource servers refuse their tokens."""
        return await self._end(
            db,
            (LoginSession.id == sid) | (LoginSession.parent_id == sid),
            reason=reason,
            audit_type=audit.LOGOUT,
            ip=ip,
            user_agent=user_agent,
        )

    async def rotate(
        self,
        db: AsyncSession,
        *,
        token: str,
        client_id: str,
        requested_scope: frozenset[str] | None,
        ip: str | None,
        user_agent: str | None,
        answer_for: AnswerFor,
        expected_session: str | None = None,
        admit: Admit | None = None,
    ) -> dict[str, Any]:
        """The refresh_token grant's work; returns the answer (`answer_for` shapes it: this
        package only rotates). Raises RefreshFailed (every kind of invalid token, after ending
        the session on reuse) or ScopeWidened.

        `expected_session`: a relay (a resource server refreshing for its caller) names the
        session of the caller's expired access token; a refresh token of any other session is
        refused before anything is spent. `admit` may refuse before anything is spent."""
        request = _RotationRequest(
            token, client_id, requested_scope, ip, user_agent, answer_for, expected_session, admit
        )
        if self._pool is not None and requested_scope is None:
            answer = await self._rotate_in_one_statement(db, request)
            if answer is not None:
                return answer
        return await self._rotate_in_transaction(db, request)

    def _check(
        self,
        record: RefreshTokenRecord | None,
        client_id: str,
        expected_session: str | None,
        now: dt.datetime,
    ) -> RefreshTokenRecord:
        if record is None:
            raise RefreshFailed("unknown")
        session = record.session
        if session.client_id != client_id:
            raise RefreshFailed("client_mismatch")
        if expected_session is not None and session.id != expected_session:
            raise RefreshFailed("session_mismatch")
        if not session.is_live(now):
            raise RefreshFailed("session_ended")
        return record

    def _seal(
        self, answer: dict[str, Any], token_hash: str, ip: str | None, user_agent: str | None
    ) -> bytes:
        """The rotation's answer, encrypted, bound to the party that asked (its address and user
        agent) and to the token it replaced (associated data)."""
        return self._grace.seal({"answer": answer, "ip": ip, "user_agent": user_agent}, token_hash)

    async def _rotate_in_one_statement(
        self, db: AsyncSession, r: _RotationRequest
    ) -> dict[str, Any] | None:
        """PostgreSQL: one read, then one statement that does the whole rotation (no transaction
        of its own to begin and commit), on the connection `db` holds if it holds one. None when
        the transactional path must decide: the token was used already (a replay), or something
        changed between the read and the statement."""
        now = self._clock()
        async with PostgresRotation.connect(self._pool, db) as rotation:
            record = self._check(await rotation.find(r.token), r.client_id, r.expected_session, now)
            if record.used_at is not None:
                return None
            if r.admit is not None:
                await r.admit(record.session)
            plan = RotationPlan(record.session, record.scope, new_refresh_token())
            answer, kid = await r.answer_for(plan, None)
            done = await rotation.rotate(
                record,
                child_token=plan.refresh_token,
                scope=plan.scope,
                sealed_answer=self._seal(answer, record.token_hash, r.ip, r.user_agent),
                kid=kid,
                now=now,
            )
        if not done:
            return None
        self._count_rotation(db, record.session.client_id)
        return answer

    async def _rotate_in_transaction(self, db: AsyncSession, r: _RotationRequest) -> dict[str, Any]:
        now = self._clock()
        record = self._check(
            await self._tokens.find(db, r.token), r.client_id, r.expected_session, now
        )
        session = record.session
        if record.used_at is None:
            scope = record.scope
            if r.requested_scope is not None:
                # RFC 6749 §6: a refresh may narrow the scope, never widen it.
                if not r.requested_scope <= frozenset(record.scope.split()):
                    raise ScopeWidened()
                scope = " ".join(sorted(r.requested_scope))
            if r.admit is not None:
                await r.admit(session)
            if await self._tokens.claim(db, record.id, now):
                child = await self._tokens.add(
                    db,
                    session_id=session.id,
                    scope=scope,
                    now=now,
                    expires_at=session.expires_at,
                    parent_id=record.id,
                )
                answer, _ = await r.answer_for(RotationPlan(session, scope, child), db)
                sealed = self._seal(answer, record.token_hash, r.ip, r.user_agent)
                await self._tokens.store_answer(db, record.id, sealed)
                await db.execute(
                    update(LoginSession)
                    .where(LoginSession.id == session.id)
                    .values(last_used_at=now)
                    .execution_options(synchronize_session=False)
                )
                self._count_rotation(db, session.client_id)
                return answer
            # Lost the race: the winner has committed by now (our UPDATE waited for its lock),
            # and a fresh read sees its answer.
            record = self._check(await self._tokens.find(db, r.token), r.client_id, None, now)
        return (await self._replay(db, record, Client(r.ip, r.user_agent))).answer

    def _count_rotation(self, db: AsyncSession, client_id: str) -> None:
        """A routine rotation is counted for the audit trail, not written as a row of its own
        (audit.py), once the unit of work that made it commits (no count for a rollback)."""
        routine = self._routine
        if routine is None:
            return

        async def count() -> None:
            routine.add(audit.REFRESH, client_id)

        after_commit(db, count)

    async def _replay(
        self, db: AsyncSession, record: RefreshTokenRecord, client: Client
    ) -> Replayed:
        """A used token again: the same answer inside the grace window if it is the one that was
        just rotated and the same party presents it again (the same client, address and user
        agent: parallel tabs, a lost response); otherwise theft (RFC 9700 §4.14.2), and the
        whole session ends."""
        now = self._clock()
        grace = dt.timedelta(seconds=self._settings.refresh_reuse_grace)
        session = record.session
        within_grace = record.used_at is not None and now - record.used_at <= grace
        if within_grace and not await self._tokens.child_used(db, record.id):
            stored = await self._stored_answer(db, record)
            same_party = (
                stored is not None
                and stored.get("ip") == client.ip
                and stored.get("user_agent") == client.user_agent
            )
            answer = stored.get("answer") if stored is not None and same_party else None
            if isinstance(answer, dict):
                audit.record(
                    db,
                    audit.REFRESH_GRACE_REPLAY,
                    user_id=session.user_id,
                    session_id=session.id,
                    client_id=session.client_id,
                    ip=client.ip,
                    user_agent=client.user_agent,
                )
                return Replayed(answer)
        await self._end(
            db,
            LoginSession.id == session.id,
            reason="refresh_token_reuse",
            audit_type=audit.REFRESH_REUSE,
            ip=client.ip,
            user_agent=client.user_agent,
        )
        raise RefreshFailed("reuse")

    async def _stored_answer(
        self, db: AsyncSession, record: RefreshTokenRecord
    ) -> dict[str, Any] | None:
        blob = record.grace_response
        waited = 0.0
        # The winner stores its answer in the transaction that marks the token used, so a
        # committed `used_at` comes with its answer; a short wait covers a reader that saw the
        # one without the other.
        while blob is None and waited < GRACE_ANSWER_WAIT:
            await asyncio.sleep(0.05)
            waited += 0.05
            blob = await self._tokens.answer(db, record.id)
        return self._grace.open(blob, record.token_hash) if blob is not None else None

    # -- ending ----------------------------------------------------------------------------

    async def _end(
        self,
        db: AsyncSession,
        condition: ColumnElement[bool],
        *,
        reason: str,
        audit_type: str,
        ip: str | None,
        user_agent: str | None,
        user_not_before: str | None = None,
    ) -> int:
        """End the live sessions matching `condition`: each gets a `sid` revocation event and an
        audit record (and, if asked, the user a "not before" time). Returns how many ended."""
        now = self._clock()
        ended = (
            await db.execute(
                update(LoginSession)
                .where(condition, LoginSession.ended_at.is_(None))
                .values(ended_at=now, end_reason=reason)
                .returning(LoginSession.id, LoginSession.user_id, LoginSession.client_id)
                .execution_options(synchronize_session=False)
            )
        ).all()
        horizon = token_horizon(self._settings, now)
        for sid, user_id, client_id in ended:
            await self._revocations.add(db, RevocationKind.SID, sid, horizon)
            audit.record(
                db,
                audit_type,
                user_id=user_id,
                session_id=sid,
                client_id=client_id,
                ip=ip,
                user_agent=user_agent,
                detail={"reason": reason},
            )
        if user_not_before is not None:
            await self._revocations.add(
                db, RevocationKind.USER, user_not_before, horizon, not_before=now
            )
        return len(ended)

    async def end_session(
        self,
        db: AsyncSession,
        session_id: str,
        *,
        reason: str,
        audit_type: str,
        ip: str | None,
        user_agent: str | None,
    ) -> bool:
        # A browser session's children end with it (contract §8.3); a client session has none.
        ended = await self._end(
            db,
            (LoginSession.id == session_id) | (LoginSession.parent_id == session_id),
            reason=reason,
            audit_type=audit_type,
            ip=ip,
            user_agent=user_agent,
        )
        return ended > 0

    async def end_user_sessions(
        self,
        db: AsyncSession,
        user_id: str,
        *,
        reason: str,
        audit_type: str,
        ip: str | None,
        user_agent: str | None,
        keep: str | None = None,
        not_before: bool = False,
    ) -> int:
        """End every live session of a user, except `keep` (the caller's own). With
        `not_before`, every older token of the user is refused too (log out everywhere)."""
        condition = LoginSession.user_id == user_id
        if keep is not None:
            condition = condition & (LoginSession.id != keep)
            # The browser session the kept one was signed in through stays too: this device
            # stays signed in, at the page and at the auth server.
            parent = await db.scalar(select(LoginSession.parent_id).where(LoginSession.id == keep))
            if parent is not None:
                condition = condition & (LoginSession.id != parent)
        return await self._end(
            db,
            condition,
            reason=reason,
            audit_type=audit_type,
            ip=ip,
            user_agent=user_agent,
            user_not_before=user_id if not_before else None,
        )

    async def revoke_refresh_token(
        self,
        db: AsyncSession,
        token: str,
        client_id: str,
        *,
        ip: str | None,
        user_agent: str | None,
        admit: Admit | None = None,
    ) -> bool:
        """RFC 7009: a refresh token's revocation ends its whole session. False when the token
        is unknown or another client's (which RFC 7009 §2.1 answers like an unknown token).
        A token whose session has already ended (or expired) changes nothing: `admit` is not
        asked and nothing is written."""
        record = await self._tokens.find(db, token)
        if record is None or record.session.client_id != client_id:
            return False
        if not record.session.is_live(self._clock()):
            return True
        if admit is not None:
            await admit(record.session)
        await self.end_session(
            db,
            record.session.id,
            reason="revoked",
            audit_type=audit.REVOKE,
            ip=ip,
            user_agent=user_agent,
        )
        return True

    # -- reading ---------------------------------------------------------------------------

    async def find_refresh_token(self, db: AsyncSession, token: str) -> RefreshTokenRecord | None:
        return await self._tokens.find(db, token)

    async def live(self, db: AsyncSession, user_id: str | None = None) -> list[LoginSession]:
        """Live sessions, newest first (every user's when `user_id` is None)."""
        now = self._clock()
        query = select(LoginSession).where(
            LoginSession.ended_at.is_(None), LoginSession.expires_at > now
        )
        if user_id is not None:
            query = query.where(LoginSession.user_id == user_id)
        return list((await db.scalars(query.order_by(LoginSession.created_at.desc()))).all())

    async def token_is_revoked(
        self,
        db: AsyncSession,
        *,
        jti: str,
        sid: str | None,
        sub: str,
        iat: int,
        kid: str | None = None,
    ) -> bool:
        """The auth server's own view of an access token's revocation (for introspection and for
        its own protected endpoints): the same rules as a resource server's denylist."""
        if kid is not None and await kid_revoked(db, kid):
            return True
        if sid is not None:
            row = (
                await db.execute(
                    select(LoginSession.ended_at, LoginSession.expires_at).where(
                        LoginSession.id == sid
                    )
                )
            ).one_or_none()
            if row is None or row[0] is not None or row[1] <= self._clock():
                return True
        if await jti_revoked(db, jti):
            return True
        not_before = await user_not_before(db, sub)
        return not_before is not None and issued_before(iat, not_before.timestamp())


__all__ = [
    "AnswerFor",
    "RefreshFailed",
    "Replayed",
    "RotationPlan",
    "ScopeWidened",
    "SessionService",
    "StartedSession",
    "new_session_id",
]
