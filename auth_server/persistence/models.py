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


class LoginName(Base):
    """The names a user logs in with: the username and the email, each in the one canonical
    form of users/normalize.login_key. The key is unique across both kinds, so one login string
    names at most one account, whatever the order of sign-ups; a sign-up writes its names in
    the transaction that adds the user."""

    __tablename__ = "login_names"

    name: Mapped[str] = mapped_column(String(320), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(8))  # username | email


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
    # Space-separated absolute URIs, compared by exact string (RFC 9700 §2.1, RFC 6749 §3.1.2).
    redirect_uris: Mapped[str] = mapped_column(Text, default="", server_default="")
    post_logout_redirect_uris: Mapped[str] = mapped_column(Text, default="", server_default="")
    # Ours: signs in without a consent page, and may use the account routes (contract §8.2).
    first_party: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # RFC 8252: a native app, whose loopback redirect's port may vary (§7.3).
    native: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


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
    """A session: the `sid` claim. Two kinds (contract §8.3):
    - `client`: a client's sign-in (a password grant, or a code exchanged), with its refresh
      chain; when it came from a browser session, `parent_id` names it;
    - `browser`: the person's sign-in at the hosted pages, found by its cookie (`secret_hash`,
      the SHA-256 of the cookie's random value: the `sid` itself appears in tokens, so it can't
      be the cookie). Ending it ends its children.
    """

    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    client_id: Mapped[str | None] = mapped_column(
        ForeignKey("clients.id", ondelete="CASCADE"), nullable=True
    )
    kind: Mapped[str] = mapped_column(String(16), default="client", server_default="client")
    parent_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    secret_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    # How and when the person authenticated (OIDC Core §2): carried into codes and tokens.
    auth_time: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    amr: Mapped[str | None] = mapped_column(String(64), nullable=True)  # space-separated
    acr: Mapped[str | None] = mapped_column(String(64), nullable=True)
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
    __table_args__ = (
        Index("ix_revocations_kind_value", "kind", "value"),
        # One row per revoked access token: revoking it again writes nothing, and of racing
        # revocations one writes (auth_server/oauth/revocation.py).
        Index(
            "uq_revocations_jti",
            "value",
            unique=True,
            sqlite_where=text("kind = 'jti'"),
            postgresql_where=text("kind = 'jti'"),
        ),
    )

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
    # How many events the row stands for: 1, or the routine events of one kind a server
    # process counted between two writes (auth_server/audit.py, RoutineCounts).
    count: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))


class TotpCredential(Base):
    """A TOTP authenticator (RFC 6238). The seed is AES-GCM encrypted under a key derived from
    AUTH_KEY_ENCRYPTION_KEY, with the row's id as associated data. It counts once confirmed by a
    first code; `last_used_step` is the time step of the last code accepted (the setup code
    included): a code is accepted only for a later step, by one conditional UPDATE, so no code
    and no earlier code is ever accepted twice."""

    __tablename__ = "totp_credentials"
    # One confirmed authenticator per account (a new one replaces it when it is confirmed).
    __table_args__ = (
        Index(
            "uq_totp_credentials_one_confirmed",
            "user_id",
            unique=True,
            sqlite_where=text("confirmed_at IS NOT NULL"),
            postgresql_where=text("confirmed_at IS NOT NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    secret_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_used_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class RecoveryCode(Base):
    """One of an account's recovery codes: only its keyed hash (factors/recovery_codes.py), and
    when it was used (each is usable once)."""

    __tablename__ = "recovery_codes"
    __table_args__ = (Index("ix_recovery_codes_user_hash", "user_id", "code_hash", unique=True),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class WebAuthnCredential(Base):
    """A passkey (WebAuthn Level 3 §4 "credential record"): one credential serves as a second
    factor and for passwordless sign-in."""

    __tablename__ = "webauthn_credentials"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # ours, for the pages' URLs
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # base64url of the authenticator's credential id (at most 1023 bytes, L3 §7.1 step 18).
    credential_id: Mapped[str] = mapped_column(String(1400), unique=True)
    # The user handle the credential was made for (random, never the `sub`): L3 §7.2 step 6
    # compares it with the one an authenticator returns.
    user_handle: Mapped[bytes] = mapped_column(LargeBinary)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)  # COSE_Key
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    # L3 §6.1.3: backup eligibility is fixed when the credential is made; an assertion whose BE
    # flag differs is refused. The backed-up state may change.
    backup_eligible: Mapped[bool] = mapped_column(Boolean)
    backed_up: Mapped[bool] = mapped_column(Boolean)
    transports: Mapped[str] = mapped_column(String(128), default="")  # space-separated
    aaguid: Mapped[str | None] = mapped_column(String(36), nullable=True)
    name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Set when an assertion's signature counter did not increase (L3 §6.1.1): a sign that the
    # authenticator may have been cloned. The credential keeps working; the user is told.
    counter_regressed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class WebAuthnChallenge(Base):
    """A WebAuthn ceremony in progress: its challenge, usable once (deleted by the statement that
    reads it) and until `expires_at`, bound to who asked for it."""

    __tablename__ = "webauthn_challenges"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(16))  # register | authenticate
    challenge: Mapped[bytes] = mapped_column(LargeBinary)
    # The account: the registering one, the one signing in with a second factor, or NULL for a
    # passwordless sign-in (the credential names its account).
    user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=True
    )
    # The SHA-256 of what the ceremony is bound to (a login flow, a browser session): a
    # challenge started by one can't be finished by another.
    binding_hash: Mapped[str] = mapped_column(String(64))
    user_handle: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    user_verification: Mapped[str] = mapped_column(String(16))  # required | preferred
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)


class FactorFailures(Base):
    """Consecutive failures of one kind of second factor (`otp`: TOTP codes; `recovery`:
    recovery codes) of one account. NIST SP 800-63B §5.2.2: after 100 the factor is locked
    (`locked_at`) until a reset: the account's owner enrolling it again, or an operator.
    Counted before each check; a success sets it back to zero."""

    __tablename__ = "factor_failures"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    locked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class RateLimitCounter(Base):
    """Attempt counters shared by replicas that have no Redis (auth_server/ratelimit.py). The
    key is a hash: no username or address is stored in clear."""

    __tablename__ = "rate_limits"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    window_end: Mapped[float] = mapped_column(Float, index=True)  # epoch seconds


class LoginFlow(Base):
    """A sign-in in progress at the hosted pages (Kratos' "flow"): the authorization request it
    serves (or none: a sign-in at the auth server itself), and the steps passed so far. The id
    travels in the page's URL; the flow is bound to the browser that started it (the hash of its
    CSRF cookie), so a link to someone else's flow leads nowhere."""

    __tablename__ = "login_flows"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    binding_hash: Mapped[str] = mapped_column(String(64))
    request: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # Set once a first factor passed while another step is still due (a second factor, later).
    user_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    amr: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The password's counts (throttle tickets), forgiven once the second factor passes.
    attempt: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)


class AuthorizationCode(Base):
    """RFC 6749 §4.1.2: single use, at most 60 s, bound to its client, redirect URI, PKCE
    challenge and resource. Only the SHA-256 of the code is stored."""

    __tablename__ = "authorization_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(128))
    user_id: Mapped[str] = mapped_column(String(36))
    browser_session_id: Mapped[str] = mapped_column(String(64))
    redirect_uri: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(Text)
    code_challenge: Mapped[str | None] = mapped_column(String(128), nullable=True)
    nonce: Mapped[str | None] = mapped_column(Text, nullable=True)
    resource: Mapped[str | None] = mapped_column(Text, nullable=True)
    auth_time: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    amr: Mapped[str] = mapped_column(String(64))
    acr: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The session its exchange started: a replay ends it (RFC 6749 §4.1.2).
    session_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class Consent(Base):
    """What a person allowed a (third-party) client, remembered per user, client and scopes."""

    __tablename__ = "consents"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    client_id: Mapped[str] = mapped_column(
        ForeignKey("clients.id", ondelete="CASCADE"), primary_key=True
    )
    scopes: Mapped[str] = mapped_column(Text)  # space-separated
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
