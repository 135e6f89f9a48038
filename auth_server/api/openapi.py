"""The auth server's own OpenAPI declarations: RFC 6749 error bodies, the OAuth form bodies and
the success bodies of the routes that answer with a hand-made JSONResponse.

What both services share (problem+json, 413, 422, 503, bearer challenges) is
`shared.service.openapi`; `customize(settings)` adds what depends on this deployment's settings.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, Literal

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from auth_server.oauth import errors as oauth_errors
from auth_server.oauth.clients import GRANT_TYPES
from auth_server.settings import AuthSettings
from auth_server.users.normalize import USERNAME_MAX, USERNAME_MIN
from auth_server.users.policy import MAX_LENGTH as PASSWORD_MAX
from auth_server.users.policy import MIN_LENGTH as PASSWORD_MIN
from shared.service.openapi import (
    INDEPENDENT_PATHS,
    NO_NUL,
    PROBLEM_REF,
    RETRY_AFTER,
    header,
    install_openapi,
)
from shared.service.problem import PROBLEM_JSON

OAUTH_ERROR_REF = {"$ref": "#/components/schemas/OAuthError"}
# Every RFC 6749 §5.2 code this server answers with, read off the error classes themselves.
_ERRORS: list[type[oauth_errors.OAuthError]] = [
    oauth_errors.OAuthError,
    *oauth_errors.OAuthError.__subclasses__(),
]
OAUTH_ERROR_CODES = sorted({error.error for error in _ERRORS})
OAUTH_ERROR_SCHEMA: dict[str, Any] = {
    "title": "OAuthError",
    "description": "RFC 6749 §5.2 error response.",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "enum": OAUTH_ERROR_CODES},
        "error_description": {"type": "string"},
    },
}
CLIENT_BASIC = "clientBasic"
CLIENT_BASIC_SCHEME = {
    "type": "http",
    "scheme": "basic",
    "description": "A confidential client's id and secret (RFC 6749 §2.3.1).",
}
# Confidential clients authenticate with HTTP Basic, public clients name themselves in the form
# (`client_id`), and `client_secret` in the form is accepted too (client_secret_post).
CLIENT_AUTH_SECURITY: list[dict[str, list[str]]] = [{CLIENT_BASIC: []}, {}]
BASIC_CHALLENGE = header(
    'The Basic challenge: `Basic realm="notes-auth", charset="UTF-8"`.', required=True
)
PAGE_COOKIE = header(
    "Only for the web page's own client (`web-page`): its refresh token, `HttpOnly`, "
    "`SameSite=Strict`, scoped to the token and revoke paths (cleared when refused)."
)
NO_STORE_HEADERS = {
    "Cache-Control": header("`no-store`", required=True, enum=["no-store"]),
    "Pragma": header("`no-cache`", required=True, enum=["no-cache"]),
}
# RFC 6749 §3.2 and appendix B, as auth_server.api.forms reads them: no NUL, no repeated
# parameter, at most 50 of them; an empty value is the same as an absent one.


# What auth_server.users accepts, for the request schemas (`json_schema_extra`): the checks
# themselves stay where they live (normalize.py, policy.py) and answer 422.
# Spaces around the name are stripped (after NFKC), control characters refused: Unicode's
# space separators (Zs) may surround it, nothing else.
_SPACES = "[ \\u00a0\\u1680\\u2000-\\u200a\\u202f\\u205f\\u3000]*"
USERNAME_SCHEMA: JsonDict = {
    "description": "Letters, digits and . _ - @ + (Unicode letters too); NFKC-normalized and "
    "case-folded before it is stored or compared, so look-alikes are one name.",
    "pattern": f"^{_SPACES}[\\p{{L}}\\p{{Nd}}_.@+-]{{{USERNAME_MIN},{USERNAME_MAX}}}{_SPACES}$",
}
# email-validator (deliverability not checked) also wants a dotted domain that is neither an IP
# literal, nor all digits at the end, nor a special-use name (RFC 6761).
EMAIL_SCHEMA: JsonDict = {
    "format": "email",
    "description": "A dotted domain, not an address literal, nor a special-use name such as "
    "`.test` or `.local`.",
    "pattern": "^[^@\\s]+@[^@\\s\\[\\]]+\\."
    "(?!(?:arpa|invalid|local|localhost|onion|test)$)[^@\\s.0-9][^@\\s.]*$",
}
PASSWORD_SCHEMA: JsonDict = {
    "description": f"{PASSWORD_MIN} to {PASSWORD_MAX} characters (NFC), and not one of the "
    "10,000 most common passwords, the username or the email address.",
    "minLength": PASSWORD_MIN,
    "maxLength": PASSWORD_MAX,
    "format": "password",
}


def _oauth_error(description: str, **headers: Any) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": OAUTH_ERROR_REF}},
        "headers": {**NO_STORE_HEADERS, **headers},
    }


def oauth_error_responses(
    *, throttled: bool = False, page_cookie: bool = False
) -> dict[int | str, dict[str, Any]]:
    """The RFC 6749 §5.2 answers of an OAuth endpoint (the common pass adds 413, and the
    problem+json 503 of a database outage, which carries no Cache-Control)."""
    responses: dict[int | str, dict[str, Any]] = {
        400: _oauth_error(
            "Refused: `invalid_request`, `invalid_client` (no credential presented: no or an "
            "unknown `client_id`, a confidential client without its secret), `invalid_grant`, "
            "`unauthorized_client`, `unsupported_grant_type`, `invalid_scope`, and "
            "`mfa_required` (the password grant for an account with a second factor, without "
            "`otp`)."
        ),
        401: _oauth_error(
            "`invalid_client`: the client's credential was refused (malformed HTTP Basic, an "
            "unknown client, a wrong secret, or a secret sent by a public client), by HTTP Basic "
            "or as `client_secret` in the form. `WWW-Authenticate` only after HTTP Basic "
            "(RFC 6749 §5.2).",
            **{"WWW-Authenticate": {**BASIC_CHALLENGE, "required": False}},
        ),
        503: {
            "description": "`temporarily_unavailable`: the password hashing pool or the "
            "rate-limit store is saturated or down; nothing was done.",
            "content": {"application/json": {"schema": OAUTH_ERROR_REF}},
            "headers": {"Retry-After": RETRY_AFTER},
        },
    }
    if page_cookie:
        # A refused refresh of the web page's own client also clears its cookie.
        responses[400]["headers"]["Set-Cookie"] = PAGE_COOKIE
    if throttled:
        responses[429] = _oauth_error(
            "Too many attempts (`invalid_request`); try again after `Retry-After` seconds.",
            **{"Retry-After": RETRY_AFTER},
        )
    return responses


def form_body(
    properties: dict[str, dict[str, Any]], required: list[str], description: str
) -> dict[str, Any]:
    """An `openapi_extra` declaring an application/x-www-form-urlencoded body."""
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "required": required,
                        "maxProperties": 50,
                        "properties": properties,
                    }
                }
            },
        }
    }


def text(description: str, **constraints: Any) -> dict[str, Any]:
    return {"type": "string", **NO_NUL, "description": description, **constraints}


CLIENT_FIELDS = {
    "client_id": text(
        "The client (public clients; optional with HTTP Basic).",
        maxLength=128,
        examples=["web"],  # the public client every installation has (docs: register a client)
    ),
    "client_secret": text("client_secret_post: instead of HTTP Basic.", format="password"),
}
TOKEN_FORM = form_body(
    {
        "grant_type": {"type": "string", "enum": sorted(GRANT_TYPES)},
        "username": text("password grant: the username or the email address."),
        "password": text("password grant.", format="password"),
        "otp": text(
            "password grant, for an account with a second factor: a TOTP code or a recovery "
            "code (without it, the answer is `mfa_required`).",
            format="password",
        ),
        "refresh_token": text("refresh_token grant."),
        "scope": text(
            "Space-separated scopes (RFC 6749 §3.3); default: all the client and user may have "
            "but `admin`, which is granted only when asked for by name.",
            pattern="^[\\x20-\\x21\\x23-\\x5b\\x5d-\\x7e]*$",
        ),
        **CLIENT_FIELDS,
    },
    ["grant_type"],
    "RFC 6749 §4.3 (password), §6 (refresh_token), §4.4 (client_credentials).",
)
TOKEN_FORM_FIELDS = {
    "token": text("The access or refresh token.", minLength=1),
    # RFC 7009 §2.1: only a hint; a value the server doesn't know is ignored, not refused.
    "token_type_hint": text(
        "`access_token` or `refresh_token`; other values are ignored.",
        examples=["access_token", "refresh_token"],
    ),
}
REVOKE_FORM = form_body(
    {**TOKEN_FORM_FIELDS, **CLIENT_FIELDS},
    ["token"],
    "RFC 7009 §2.1 (the web page's own client may instead send its refresh-token cookie).",
)
INTROSPECT_FORM = form_body({**TOKEN_FORM_FIELDS, **CLIENT_FIELDS}, ["token"], "RFC 7662 §2.1.")


class TokenResponse(BaseModel):
    """RFC 6749 §5.1."""

    access_token: str = Field(description="An RS256 JWT (RFC 9068).")
    token_type: Literal["Bearer"]
    expires_in: int
    scope: str
    refresh_token: str | None = Field(
        default=None,
        description="Absent for client_credentials, and for the web page's own client (its "
        "refresh token travels only in an HttpOnly cookie).",
    )


class IntrospectionResponse(BaseModel):
    """RFC 7662 §2.2: `{"active": false}` for anything not active."""

    active: bool
    token_type: str | None = None
    scope: str | None = None
    client_id: str | None = None
    sub: str | None = None
    aud: str | list[str] | None = None
    iss: str | None = None
    exp: int | None = None
    iat: int | None = None
    jti: str | None = None
    sid: str | None = None


class Revoked(BaseModel):
    """RFC 7009 §2.2: an empty object, for known and unknown tokens alike."""

    model_config = ConfigDict(extra="forbid")


class FeedEvent(BaseModel):
    id: int
    type: str = Field(description="`sid`, `jti`, `user` or `kid`.")
    value: str
    not_before: float | None = Field(description="For `user`: tokens issued before are refused.")
    expires_at: float = Field(description="After this, the event no longer matters.")
    revoked_at: float


class FeedPage(BaseModel):
    events: list[FeedEvent]
    cursor: str = Field(description="Pass it as `since` in the next read.")
    has_more: bool


class Metadata(BaseModel):
    """RFC 8414 §2 (and the revocation feed's address)."""

    model_config = ConfigDict(extra="allow")

    issuer: str
    token_endpoint: str
    jwks_uri: str
    revocation_endpoint: str
    introspection_endpoint: str
    revocation_feed_endpoint: str
    grant_types_supported: list[str]
    response_types_supported: list[str]
    scopes_supported: list[str]
    token_endpoint_auth_methods_supported: list[str]


class JsonWebKey(BaseModel):
    model_config = ConfigDict(extra="allow")

    kty: str
    kid: str
    use: str | None = None
    alg: str | None = None


class JsonWebKeySet(BaseModel):
    """RFC 7517 §5: public keys only."""

    keys: list[JsonWebKey]


def _feed_responses() -> dict[int | str, dict[str, Any]]:
    oauth = oauth_error_responses()
    bad_request = oauth[400]
    bad_request["description"] = (
        "A malformed `since` (problem+json), or, where the feed requires client "
        "authentication, a request without it (`invalid_client`, RFC 6749 JSON)."
    )
    bad_request["content"][PROBLEM_JSON] = {"schema": PROBLEM_REF}
    bad_request.pop("headers")  # the problem+json answer has no Cache-Control
    unauthorized = oauth[401]
    unauthorized["description"] = (
        "`invalid_client`: HTTP Basic is missing or refused, or the client may not read the feed."
    )
    unauthorized["headers"]["WWW-Authenticate"] = BASIC_CHALLENGE  # always: the feed is Basic
    return {200: {"model": FeedPage}, 400: bad_request, 401: unauthorized, 503: oauth[503]}


FEED_RESPONSES = _feed_responses()
CACHEABLE_HEADERS = {
    "Cache-Control": header("`public, max-age=N`.", required=True),
    "ETag": header("A strong entity tag of this key set.", required=True),
}
JWKS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"headers": CACHEABLE_HEADERS},
    304: {"description": "Not modified (`If-None-Match`).", "headers": CACHEABLE_HEADERS},
}
JWKS_PARAMETERS = {
    "parameters": [
        {
            "name": "If-None-Match",
            "in": "header",
            "required": False,
            "description": "Entity tags from an earlier answer (or `*`): 304 when one matches.",
            "schema": {"type": "string"},
        }
    ]
}


def customize(settings: AuthSettings) -> Callable[[dict[str, Any]], None]:
    """What the document says that depends on this deployment."""

    def apply(document: dict[str, Any]) -> None:
        components = document.setdefault("components", {})
        components.setdefault("schemas", {})["OAuthError"] = copy.deepcopy(OAUTH_ERROR_SCHEMA)
        components.setdefault("securitySchemes", {})[CLIENT_BASIC] = dict(CLIENT_BASIC_SCHEME)
        for path in ("/token", "/revoke", "/introspect"):
            operation = document["paths"][path]["post"]
            operation["security"] = copy.deepcopy(CLIENT_AUTH_SECURITY)
            form = operation["requestBody"]["content"]["application/x-www-form-urlencoded"]
            for field in form["schema"]["properties"].values():
                if "enum" not in field:
                    # AUTH_MAX_FORM_FIELD_LENGTH (a client id is at most 128 characters).
                    field["maxLength"] = min(
                        field.get("maxLength", settings.max_form_field_length),
                        settings.max_form_field_length,
                    )
        if settings.feed_requires_client:
            # AUTH_REVOCATION_FEED_AUTH=client: only confidential clients with revocations:read.
            document["paths"]["/revocations"]["get"]["security"] = [{CLIENT_BASIC: []}]

    return apply


__all__ = [
    "EMAIL_SCHEMA",
    "FEED_RESPONSES",
    "INTROSPECT_FORM",
    "JWKS_PARAMETERS",
    "JWKS_RESPONSES",
    "NO_STORE_HEADERS",
    "OAUTH_ERROR_CODES",
    "PAGE_COOKIE",
    "PASSWORD_SCHEMA",
    "REVOKE_FORM",
    "TOKEN_FORM",
    "USERNAME_SCHEMA",
    "FeedPage",
    "IntrospectionResponse",
    "JsonWebKeySet",
    "Metadata",
    "Revoked",
    "TokenResponse",
    "customize",
    "install",
    "oauth_error_responses",
]


def install(app: FastAPI, settings: AuthSettings) -> None:
    """The auth server's document: the common declarations, then this server's own."""
    install_openapi(
        app,
        # The metadata is built from the settings alone.
        independent=(*INDEPENDENT_PATHS, "/.well-known/oauth-authorization-server"),
        customize=customize(settings),
    )
