"""Bulk-loaded rows for the benchmark, in one place: users, login sessions with refresh tokens,
and revocation-feed entries, written straight into the auth server's PostgreSQL database with
generate_series (never through the API: a million sessions through the API would take hours).

If the auth schema changes (auth_server/persistence/models.py and its Alembic migrations), this
is the only file to adapt. The columns used here:

  users(id, username, email, email_normalized, password_hash, is_admin, created_at)
  login_names(name, user_id, kind)       -- the username and the email: what a login looks up
  sessions(id, user_id, client_id, scope, created_at, last_used_at, expires_at, ip, user_agent)
  refresh_tokens(token_hash, session_id, scope, created_at, expires_at)   -- id autoincrements
  revocations(kind, value, not_before, created_at, expires_at)            -- id autoincrements

Refresh tokens are stored as the SHA-256 hex of the token string. The token of seeded session n
is `refresh_token(seed, n)`, so the benchmark knows every seeded token without storing them.
"""

from __future__ import annotations

import hashlib
from typing import Any

SCOPE = "notes:read notes:write"
CLIENT = "web"  # created by `auth-server migrate`
# Not a valid Argon2 hash: a seeded user without a real hash can't log in, and nothing else
# reads the column.
NO_PASSWORD = "$argon2id$v=19$m=65536,t=3,p=4$bm90LWEtcmVhbC1zYWx0$bm90LWEtcmVhbC1oYXNo"


def username(seed: str, n: int) -> str:
    return f"{seed}u{n}"


def refresh_token(seed: str, n: int) -> str:
    return f"{seed}-t-{n}"


def refresh_token_hash(seed: str, n: int) -> str:
    return hashlib.sha256(refresh_token(seed, n).encode()).hexdigest()


# $1 seed, $2 password hash, $3 first n, $4 last n
USERS_SQL = """
INSERT INTO users (id, username, email, email_normalized, password_hash, is_admin, created_at)
SELECT md5($1 || '-u-' || g)::uuid::text,
       $1 || 'u' || g,
       $1 || 'u' || g || '@example.com',
       $1 || 'u' || g || '@example.com',
       $2, false, now() - interval '30 days'
FROM generate_series($3::bigint, $4::bigint) AS g
"""

# $1 seed, $2 first n, $3 last n: each user's username and email (users/normalize.login_key of
# these ASCII lower-case names is the name itself)
LOGIN_NAMES_SQL = """
INSERT INTO login_names (name, user_id, kind)
SELECT $1 || 'u' || g || suffix, md5($1 || '-u-' || g)::uuid::text, kind
FROM generate_series($2::bigint, $3::bigint) AS g,
     (VALUES ('', 'username'), ('@example.com', 'email')) AS names (suffix, kind)
"""

# $1 seed, $2 number of users (session n belongs to user 1 + (n - 1) % users), $3 first, $4 last
SESSIONS_SQL = """
INSERT INTO sessions (id, user_id, client_id, scope, created_at, last_used_at, expires_at,
                      ended_at, end_reason, ip, user_agent)
SELECT $1 || '-s-' || g,
       md5($1 || '-u-' || (1 + (g - 1) % $2::bigint))::uuid::text,
       'web', 'notes:read notes:write',
       now() - interval '1 hour', now() - interval '1 hour', now() + interval '13 days',
       NULL, NULL, '127.0.0.1', 'notes-bench'
FROM generate_series($3::bigint, $4::bigint) AS g
"""

# $1 seed, $2 first, $3 last: one live (unused) refresh token per session
REFRESH_TOKENS_SQL = """
INSERT INTO refresh_tokens (token_hash, session_id, parent_id, scope, created_at, expires_at,
                            used_at, grace_response)
SELECT encode(sha256(convert_to($1 || '-t-' || g, 'UTF8')), 'hex'),
       $1 || '-s-' || g, NULL, 'notes:read notes:write',
       now() - interval '1 hour', now() + interval '13 days', NULL, NULL
FROM generate_series($2::bigint, $3::bigint) AS g
"""

# $1 seed, $2 count: revoked access tokens (jti) and ended sessions (sid), half each, that stay
# relevant for a day. created_at lies in the past so that the feed's cursor moves past them.
REVOCATIONS_SQL = """
INSERT INTO revocations (kind, value, not_before, created_at, expires_at)
SELECT CASE WHEN g % 2 = 0 THEN 'jti' ELSE 'sid' END,
       md5($1 || '-r-' || g),
       NULL, now() - interval '1 minute', now() + interval '1 day'
FROM generate_series(1, $2::bigint) AS g
"""

# $1 session id: the last entry of the feed ends a seeded session, so that a token of that
# session being refused proves every earlier entry has been read.
MARKER_SQL = """
INSERT INTO revocations (kind, value, not_before, created_at, expires_at)
VALUES ('sid', $1, NULL, now() - interval '1 minute', now() + interval '1 day')
"""

PASSWORD_HASH_SQL = "SELECT password_hash FROM users WHERE username = $1"


async def seed_sessions(
    conn: Any,
    seed: str,
    sessions: int,
    *,
    users: int | None = None,
    password_hash: str = NO_PASSWORD,
    batch: int = 250_000,
) -> None:
    """`sessions` live sessions (each with one unused refresh token) over `users` users."""
    users = users or max(1, sessions // 10)
    await conn.execute("SET synchronous_commit = off")
    for first in range(1, users + 1, batch):
        await conn.execute(USERS_SQL, seed, password_hash, first, min(users, first + batch - 1))
        await conn.execute(LOGIN_NAMES_SQL, seed, first, min(users, first + batch - 1))
    for first in range(1, sessions + 1, batch):
        last = min(sessions, first + batch - 1)
        await conn.execute(SESSIONS_SQL, seed, users, first, last)
        await conn.execute(REFRESH_TOKENS_SQL, seed, first, last)
    # A database that has lived with these rows has been vacuumed by autovacuum: freshly loaded
    # pages would otherwise pay for hint bits and miss the visibility map on first reads.
    for table in ("users", "login_names", "sessions", "refresh_tokens"):
        await conn.execute(f"VACUUM (ANALYZE) {table}")


def session_id(seed: str, n: int) -> str:
    return f"{seed}-s-{n}"


async def seed_revocations(conn: Any, seed: str, count: int, marker_session: str) -> None:
    """`count` feed entries: `count - 1` unrelated ones, then one that ends `marker_session`."""
    await conn.execute(REVOCATIONS_SQL, seed, count - 1)
    await conn.execute(MARKER_SQL, marker_session)
    await conn.execute("VACUUM (ANALYZE) revocations")
