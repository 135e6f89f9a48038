"""CSRF protection of the hosted forms: a signed double-submit token (OWASP's "signed double
submit cookie"), plus the `Origin` check where the browser sends a real origin.

Each browser gets a random key in an HttpOnly cookie (`notes_auth_csrf`, SameSite=Lax). A form's
token is HMAC-SHA256(server secret, key + the form's purpose + its flow): a page of another site
can neither read the cookie nor compute the token, and a token of one form or flow is refused by
any other. A POST whose `Origin` header names another origin is refused before the token is even
looked at (browsers send `Origin` with every form POST).

Why our own: Starlette and FastAPI ship no CSRF protection, and the maintained packages
(starlette-csrf, fastapi-csrf-protect) check a header that plain HTML forms can't send, or sign
with itsdangerous for a single token per browser; this is twenty lines on `hmac`.

The same key binds login flows to their browser (auth_server.oauth.flows).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from starlette.requests import Request
from starlette.responses import Response

CSRF_COOKIE = "notes_auth_csrf"
MAX_KEY_LENGTH = 64


class CsrfFailed(Exception):
    pass


class CsrfGuard:
    def __init__(self, key_encryption_secret: bytes, issuer: str) -> None:
        self._secret = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"notes-auth csrf v1"
        ).derive(key_encryption_secret)
        parts = urlsplit(issuer)
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._secure = parts.scheme == "https"

    def browser_key(self, request: Request) -> str | None:
        key = request.cookies.get(CSRF_COOKIE)
        if not key or len(key) > MAX_KEY_LENGTH:
            return None
        return key

    def ensure_key(self, request: Request) -> tuple[str, bool]:
        """This browser's key, and whether it is new (then `set_key` on the response)."""
        key = self.browser_key(request)
        if key is not None:
            return key, False
        return secrets.token_urlsafe(32), True

    def set_key(self, response: Response, key: str, path: str = "/") -> None:
        response.set_cookie(
            CSRF_COOKIE, key, path=path, secure=self._secure, httponly=True, samesite="lax"
        )

    def token(self, key: str, purpose: str, flow: str | None = None) -> str:
        message = f"{key}\0{purpose}\0{flow or ''}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def check(
        self, request: Request, form_token: str | None, purpose: str, flow: str | None
    ) -> str:
        """This browser's key when the POST is genuine, else CsrfFailed."""
        origin = request.headers.get("origin")
        # `null` is what a browser sends under our `Referrer-Policy: no-referrer` (and from
        # sandboxed frames): it proves nothing either way, and the token decides.
        if origin is not None and origin != "null" and origin != self._origin:
            raise CsrfFailed("the form was sent from another site")
        key = self.browser_key(request)
        if key is None or not form_token:
            raise CsrfFailed("the form has no valid token")
        if not hmac.compare_digest(self.token(key, purpose, flow), form_token):
            raise CsrfFailed("the form's token is not valid")
        return key


__all__ = ["CSRF_COOKIE", "CsrfFailed", "CsrfGuard"]
