"""The auth server's tables. Every schema change goes through an Alembic migration."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.service.db import UTCDateTime, make_metadata, utcnow

# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL gets a real BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = make_metadata()


class User(Base):
    __tablename__ = "users"

    # The `sub` claim: an opaque, stable id, never the username.
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # NFKC-normalized and case-folded (users/normalize.py) before storing.
    username: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(320))
    # Lower-cased copy of `email`: emails are unique without regard to case.
    email_normalized: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(512))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    password_changed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Client(Base):
    __tablename__ = "clients"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    # Hashed like a password; NULL for public clients.
    secret_hash: Mapped[str | None] = mapped_column(String(512), nullable=True)
    is_confidential: Mapped[bool] = mapped_column(Boolean, default=False)
    grant_types: Mapped[str] = mapped_column(Text)  # space-separated
    scopes: Mapped[str] = mapped_column(Text)  # space-separated
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The refresh token travels only in an HttpOnly cookie (the web page's own client).
    refresh_in_cookie: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class SigningKey(Base):
    __tablename__ = "signing_keys"
    # At most one active and one next key, even when replicas race at start-up.
    __table_args__ = (
        Index(
            "uq_signing_keys_one_active",
            "state",
            unique=True,
            sqlite_where=text("state = 'active'"),
            postgresql_where=text("state = 'active'"),
        ),
        Index(
            "uq_signing_keys_one_next",
            "state",
            unique=True,
            sqlite_where=text("state = 'next'"),
            postgresql_where=text("state = 'next'"),
        ),
    )

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)  # RFC 7638 thumbprint
    state: Mapped[str] = mapped_column(String(16), index=True)  # next|active|retiring|retired
    alg: Mapped[str] = mapped_column(String(16), default="RS256")
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    # PKCS#8 DER, AES-GCM encrypted under AUTH_KEY_ENCRYPTION_KEY: nonce || ciphertext.
    private_key_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    activated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    retiring_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    retired_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # A retiring key stays published until every token it signed has expired.
    publish_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class LoginSession(Base):
    """A login session: the `sid` claim. Created by each password login."""

    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    scope: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    end_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(512), nullable=True)


class RefreshToken(Base):
    """One link of a session's rotation chain. Only the SHA-256 of the token is stored."""

    __tablename__ = "refresh_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    parent_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    scope: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    # Set once, by the one conditional UPDATE that wins the rotation.
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The token pair that the rotation returned, AES-GCM encrypted, kept for the grace window.
    grace_response: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class Revocation(Base):
    """The revocation feed; `id` is the cursor. Entries stop mattering at `expires_at`."""

    __tablename__ = "revocations"
    __table_args__ = (Index("ix_revocations_kind_value", "kind", "value"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(8))  # sid | jti | sub | kid
    value: Mapped[str] = mapped_column(String(128))
    # For kind `sub`: tokens issued before this instant are no longer good.
    not_before: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)


class AuditEvent(Base):
    """The audit trail. Never holds a token or a password."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    type: Mapped[str] = mapped_column(String(48), index=True)
    user_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    session_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    client_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(512), nullable=True)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class RateLimitCounter(Base):
    """Attempt counters shared by replicas that have no Redis (auth_server/ratelimit.py). The
    key is a hash: no username or address is stored in clear."""

    __tablename__ = "rate_limits"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    window_end: Mapped[float] = mapped_column(Float, index=True)  # epoch seconds
