"""The browser session's cookie (contract §8.3): `HttpOnly`, `SameSite=Lax` (a person arriving
from an app's link must be recognised: Strict would hide the cookie on that navigation),
`Secure` under TLS, scoped to the issuer's path. Its value is a random secret whose SHA-256 finds
the session; the session's `sid` itself appears in tokens, so it never is the cookie."""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

SESSION_COOKIE = "notes_auth_session"
MAX_COOKIE_LENGTH = 128


def _path(issuer: str) -> str:
    return (urlsplit(issuer).path.rstrip("/")) or "/"


def read_session_cookie(request: Request) -> str | None:
    value = request.cookies.get(SESSION_COOKIE)
    if not value or len(value) > MAX_COOKIE_LENGTH:
        return None
    return value


def set_session_cookie(response: Response, issuer: str, secret: str, max_age: int) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=max_age,
        path=_path(issuer),
        secure=urlsplit(issuer).scheme == "https",
        httponly=True,
        samesite="lax",
    )


def clear_session_cookie(response: Response, issuer: str) -> None:
    response.delete_cookie(
        SESSION_COOKIE,
        path=_path(issuer),
        secure=urlsplit(issuer).scheme == "https",
        httponly=True,
        samesite="lax",
    )


__all__ = ["SESSION_COOKIE", "clear_session_cookie", "read_session_cookie", "set_session_cookie"]
