"""RFC 6749 §5.2 errors. Each class carries its wire code, HTTP status and headers (as authlib does).

Only `auth_server/api/` turns these into responses (one handler, in api/oauth_errors.py).
"""

from __future__ import annotations


class OAuthError(Exception):
    error: str = "invalid_request"
    status_code: int = 400

    def __init__(
        self,
        description: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(description or self.error)
        self.description = description
        self.headers = dict(headers or {})
        if status_code is not None:
            self.status_code = status_code

    def body(self) -> dict[str, str]:
        body = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        return body


class InvalidRequest(OAuthError):
    error = "invalid_request"


class InvalidClient(OAuthError):
    """RFC 6749 §5.2: 401 when the client presented a credential that was refused (HTTP Basic, or
    a `client_secret` in the form), with the `WWW-Authenticate` challenge only when it tried
    Basic (which §5.2 requires then; it permits 401 for every `invalid_client`); 400 when it
    presented none (no client, an unknown one, a confidential client without its secret)."""

    error = "invalid_client"

    def __init__(
        self, description: str | None = None, *, basic: bool = False, credential: bool = False
    ) -> None:
        headers = {"WWW-Authenticate": 'Basic realm="notes-auth", charset="UTF-8"'} if basic else {}
        status = 401 if basic or credential else 400
        super().__init__(description, headers=headers, status_code=status)


class InvalidGrant(OAuthError):
    error = "invalid_grant"


class UnauthorizedClient(OAuthError):
    error = "unauthorized_client"


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"


class InvalidScope(OAuthError):
    error = "invalid_scope"


class MfaRequired(OAuthError):
    """Contract §8.3: the password was right, and the account has a second factor; send a TOTP
    or recovery code as `otp` (a passkey needs the browser flow)."""

    error = "mfa_required"


class TemporarilyUnavailable(OAuthError):
    """503 with Retry-After: a dependency (the shared rate-limit store) is down, so the request
    is refused rather than let through unthrottled."""

    error = "temporarily_unavailable"
    status_code = 503

    def __init__(self, retry_after: int = 5) -> None:
        super().__init__("try again shortly", headers={"Retry-After": str(retry_after)})


class SlowDown(OAuthError):
    """Too many attempts: 429 with Retry-After (the body keeps the §5.2 shape)."""

    error = "invalid_request"
    status_code = 429

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            "too many attempts; try again later",
            headers={"Retry-After": str(max(1, int(retry_after)))},
        )


class InvalidTarget(OAuthError):
    """RFC 8707 §2: the resource is not one this client may ask for, or there are several."""

    error = "invalid_target"
