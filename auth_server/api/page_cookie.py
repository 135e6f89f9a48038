"""The web page's refresh token: an HttpOnly, SameSite=Strict cookie, never a JSON field.

For a client with `refresh_in_cookie` (the seeded `web-page`), the token endpoint puts the
refresh token in a cookie scoped to the token and revoke paths (`Secure` under TLS) instead of
the response body, reads it back from there on refresh, and clears it on revocation or when the
refresh is refused. Page script never sees a refresh token (RFC 9700 §4.14, the OAuth 2.0 for
Browser-Based Applications BCP).

Against cross-site request forgery: SameSite=Strict keeps the cookie off every request another
site starts, and each cookie-bearing request must also come from an allowed origin
(AUTH_CORS_ORIGINS, checked on the `Origin` header that browsers send with such requests).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import Request, Response

from auth_server.oauth.errors import InvalidRequest
from auth_server.settings import AuthSettings

COOKIE = "notes_auth_refresh"


def cookie_paths(settings: AuthSettings) -> tuple[str, str]:
    """The token and revoke paths, under the issuer's path (behind a proxy at /auth, say)."""
    base = urlsplit(settings.issuer_base).path.rstrip("/")
    return f"{base}/token", f"{base}/revoke"


def _secure(settings: AuthSettings) -> bool:
    return urlsplit(settings.issuer_base).scheme == "https"


def set_refresh_cookie(response: Response, settings: AuthSettings, token: str) -> None:
    for path in cookie_paths(settings):
        response.set_cookie(
            COOKIE,
            token,
            max_age=settings.refresh_token_ttl,
            path=path,
            secure=_secure(settings),
            httponly=True,
            samesite="strict",
        )


def clear_refresh_cookie(response: Response, settings: AuthSettings) -> None:
    for path in cookie_paths(settings):
        response.delete_cookie(
            COOKIE, path=path, secure=_secure(settings), httponly=True, samesite="strict"
        )


def read_refresh_cookie(request: Request) -> str | None:
    value = request.cookies.get(COOKIE)
    return value or None


def check_origin(request: Request, settings: AuthSettings) -> None:
    """A cookie-bearing request must come from one of the page's origins."""
    origin = request.headers.get("origin")
    if origin is None or origin not in settings.cors_origins:
        raise InvalidRequest("this client is used only from its own web page")


__all__ = [
    "COOKIE",
    "check_origin",
    "clear_refresh_cookie",
    "cookie_paths",
    "read_refresh_cookie",
    "set_refresh_cookie",
]
