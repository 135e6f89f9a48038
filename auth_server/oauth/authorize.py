"""The authorization request (RFC 6749 §4.1.1, RFC 7636 §4.3, OIDC Core §3.1.2.1): parsing, the
client and redirect checks, PKCE, and the authorization response's URI (RFC 9207).

No FastAPI here: auth_server/web turns the outcomes into pages and redirects. Two families of
refusal, as RFC 6749 §4.1.2.1 separates them:
- `UntrustedRequest`: the client is unknown or the redirect URI isn't one of its own. Nothing may
  be sent to that URI (an open redirect, the CVE class of keycloak#33115 and its kin): the person
  gets an error page at the auth server.
- `AuthorizationError`: everything else, sent back to the client's (verified) redirect URI with
  `error`, `state` and `iss`.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from authlib.oauth2.rfc7636 import create_s256_code_challenge

from auth_server.oauth.clients import ClientRecord
from auth_server.oauth.errors import InvalidScope
from auth_server.oauth.scopes import OPENID, parse_scope, user_scopes

# RFC 7636 §4.1: code_verifier = 43*128unreserved; §4.2: an S256 challenge is 43 base64url chars.
_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
_S256_CHALLENGE = re.compile(r"^[A-Za-z0-9\-_]{43}$")
# OIDC Core §3.1.2.1, and `create` of OpenID Connect Initiating User Registration 1.0 (the
# sign-up page instead of the sign-in page).
PROMPTS = frozenset({"none", "login", "consent", "select_account", "create"})
MAX_PARAM = 2048  # characters of any one parameter (state, nonce, login_hint...)
# Parameters that may appear once at most (RFC 6749 §3.1: "MUST NOT be included more than once").
SINGLE = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "nonce",
    "prompt",
    "max_age",
    "login_hint",
    "acr_values",
    "response_mode",
)


class UntrustedRequest(Exception):
    """Refused without a redirect: an error page for the person (RFC 6749 §4.1.2.1)."""

    def __init__(self, title: str, message: str) -> None:
        super().__init__(message)
        self.title = title
        self.message = message


class AuthorizationError(Exception):
    """An error response sent to the client's redirect URI (RFC 6749 §4.1.2.1, OIDC §3.1.2.6)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """A validated authorization request: what a login flow stores and a code is bound to."""

    client_id: str
    redirect_uri: str
    scope: str
    state: str | None
    code_challenge: str
    nonce: str | None = None
    prompt: tuple[str, ...] = ()
    max_age: int | None = None
    login_hint: str | None = None
    acr_values: tuple[str, ...] = ()
    resource: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["prompt"] = list(self.prompt)
        data["acr_values"] = list(self.acr_values)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AuthorizationRequest:
        values = dict(data)
        values["prompt"] = tuple(values.get("prompt") or ())
        values["acr_values"] = tuple(values.get("acr_values") or ())
        values["extra"] = dict(values.get("extra") or {})
        return cls(**values)

    @property
    def wants_openid(self) -> bool:
        return OPENID in self.scope.split()


def single_params(pairs: list[tuple[str, str]]) -> tuple[dict[str, str], list[str]]:
    """The parameters, each once, and the names of those that came more than once (`resource`
    may repeat: RFC 8707 §2 allows several, and several are refused with invalid_target)."""
    params: dict[str, str] = {}
    repeated: list[str] = []
    resources: list[str] = []
    for name, value in pairs:
        if name == "resource":
            resources.append(value)
            continue
        if name in params:
            repeated.append(name)
        params[name] = value
    if resources:
        params["resource"] = resources[0]
        if len(resources) > 1:
            params["resource#count"] = str(len(resources))
    return params, repeated


def loopback_port_free_match(registered: str, presented: str) -> bool:
    """RFC 8252 §7.3: for a native app, a loopback IP redirect matches whatever its port; every
    other character (the scheme `http` as written, the literal host, the path, the query) stays
    exact."""
    if not (registered.startswith("http://") and presented.startswith("http://")):
        return False
    reg, got = urlsplit(registered), urlsplit(presented)
    if reg.hostname not in ("127.0.0.1", "::1") or "#" in presented or "@" in got.netloc:
        return False
    try:
        reg_port, got_port = reg.port, got.port
    except ValueError:
        return False
    reg_host = reg.netloc.rsplit(":", 1)[0] if reg_port is not None else reg.netloc
    got_host = got.netloc.rsplit(":", 1)[0] if got_port is not None else got.netloc
    return reg_host == got_host and (reg.path, reg.query) == (got.path, got.query)


def redirect_matches(client: ClientRecord, presented: str) -> bool:
    """RFC 9700 §2.1 and §4.1.3: exact string comparison with a registered URI, no patterns, no
    normalisation (a changed case, an extra path, query, fragment or user part, `..;/`, another
    scheme or port all fail); the one exception is RFC 8252 §7.3's loopback port for native
    apps."""
    registered = client.registered_redirects()
    if presented in registered:
        return True
    return client.native and any(loopback_port_free_match(r, presented) for r in registered)


def check_client_and_redirect(
    client: ClientRecord | None, params: Mapping[str, str], repeated: list[str]
) -> str:
    """The redirect URI the response may go to, or UntrustedRequest."""
    if client is None:
        raise UntrustedRequest(
            "This app isn't known here",
            "The app that sent you here isn't registered with this sign-in service, so you "
            "can't sign in to it. Go back to the app and try again, or tell its makers.",
        )
    if "client_id" in repeated or "redirect_uri" in repeated:
        raise UntrustedRequest(
            "This sign-in link is broken",
            "The link you followed names its app or its return address more than once. Go back "
            "to the app and start again.",
        )
    redirect_uri = params.get("redirect_uri")
    if not redirect_uri:
        # OIDC Core §3.1.2.1 requires it; without it there is no safe place to answer.
        raise UntrustedRequest(
            "This sign-in link is incomplete",
            "The link you followed doesn't say where to send you back to. Go back to the app "
            "and start again.",
        )
    if not client.allows("authorization_code") or not redirect_matches(client, redirect_uri):
        raise UntrustedRequest(
            "This sign-in link doesn't match its app",
            "The address this link would send you back to isn't one its app registered. "
            "Someone may be trying to catch your sign-in, so nothing was sent there. Go back to "
            "the app and start again.",
        )
    return redirect_uri


def _bounded(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    if len(value) > MAX_PARAM:
        raise AuthorizationError("invalid_request", f"{name} is too long")
    return value


def parse_authorization_request(
    client: ClientRecord,
    redirect_uri: str,
    params: Mapping[str, str],
    repeated: list[str],
) -> AuthorizationRequest:
    """Everything after the client and its redirect are trusted (`check_client_and_redirect`):
    an AuthorizationRequest, or AuthorizationError (sent to the redirect URI)."""
    if repeated:
        raise AuthorizationError("invalid_request", f"{repeated[0][:40]} is repeated")
    # OIDC Core §6: request objects are not supported (discovery says so).
    if "request" in params:
        raise AuthorizationError("request_not_supported", "request objects are not supported")
    if "request_uri" in params:
        raise AuthorizationError("request_uri_not_supported", "request_uri is not supported")
    response_type = params.get("response_type")
    if not response_type:
        raise AuthorizationError("invalid_request", "response_type is required")
    if response_type != "code":
        raise AuthorizationError("unsupported_response_type", "only response_type=code")
    if params.get("response_mode") not in (None, "", "query"):
        raise AuthorizationError("invalid_request", "only response_mode=query is supported")
    # PKCE (RFC 7636, RFC 9700 §2.1.1): S256, of every client, confidential ones too.
    challenge = params.get("code_challenge")
    method = params.get("code_challenge_method")
    if not challenge:
        raise AuthorizationError("invalid_request", "code_challenge is required (PKCE, S256)")
    if method != "S256":
        raise AuthorizationError(
            "invalid_request", "code_challenge_method must be S256 (plain is refused)"
        )
    if not _S256_CHALLENGE.match(challenge):
        raise AuthorizationError("invalid_request", "code_challenge is not an S256 challenge")
    try:
        requested = parse_scope(params.get("scope"))
    except InvalidScope:
        raise AuthorizationError("invalid_scope", "the scope parameter is malformed") from None
    allowed = frozenset(client.scopes.split()) & user_scopes(is_admin=False)
    if requested is None:
        scopes = allowed
    else:
        if requested - allowed:
            raise AuthorizationError("invalid_scope", "a requested scope is unknown or not allowed")
        scopes = requested
    if not scopes:
        raise AuthorizationError("invalid_scope", "no scope can be granted")
    prompt = tuple(dict.fromkeys((params.get("prompt") or "").split()))
    if set(prompt) - PROMPTS:
        raise AuthorizationError("invalid_request", "unknown prompt value")
    if "none" in prompt and len(prompt) > 1:
        # OIDC Core §3.1.2.1: none with any other value is an error.
        raise AuthorizationError("invalid_request", "prompt=none can't be combined")
    max_age = None
    raw_max_age = params.get("max_age")
    if raw_max_age:
        if not raw_max_age.isascii() or not raw_max_age.isdigit() or len(raw_max_age) > 9:
            raise AuthorizationError("invalid_request", "max_age must be a number of seconds")
        max_age = int(raw_max_age)
    resource = params.get("resource")
    if resource is not None:
        if "resource#count" in params:
            raise AuthorizationError("invalid_target", "one resource at a time")
        parts = urlsplit(resource)
        # RFC 8707 §2: an absolute URI without a fragment. Issue 20 gives it its meaning.
        if not parts.scheme or not parts.netloc or "#" in resource or len(resource) > MAX_PARAM:
            raise AuthorizationError("invalid_target", "resource must be an absolute URI")
    nonce = _bounded(params, "nonce")
    return AuthorizationRequest(
        client_id=client.id,
        redirect_uri=redirect_uri,
        scope=" ".join(sorted(scopes)),
        state=_bounded(params, "state"),
        code_challenge=challenge,
        nonce=nonce,
        prompt=prompt,
        max_age=max_age,
        login_hint=_bounded(params, "login_hint"),
        acr_values=tuple((_bounded(params, "acr_values") or "").split()),
        resource=resource,
    )


def authorization_response_uri(
    redirect_uri: str, issuer: str, state: str | None, **values: str
) -> str:
    """The redirect URI with the response's parameters added to its query (RFC 6749 §4.1.2: the
    registered query is kept), `iss` always (RFC 9207) and `state` whenever the client sent one."""
    parts = urlsplit(redirect_uri)
    query = parse_qsl(parts.query, keep_blank_values=True)
    added = dict(values)
    if state is not None:
        added["state"] = state
    added["iss"] = issuer
    return urlunsplit(parts._replace(query=urlencode([*query, *added.items()])))


def verify_code_verifier(verifier: str | None, challenge: str | None) -> bool:
    """RFC 7636 §4.6, with authlib's S256 transform (`create_s256_code_challenge`); a code issued
    without a challenge accepts no verifier (the PKCE downgrade of keycloak#26430)."""
    if challenge is None or verifier is None or not _VERIFIER.match(verifier):
        return False
    return hmac.compare_digest(create_s256_code_challenge(verifier), challenge)


__all__ = [
    "AuthorizationError",
    "AuthorizationRequest",
    "UntrustedRequest",
    "authorization_response_uri",
    "check_client_and_redirect",
    "loopback_port_free_match",
    "parse_authorization_request",
    "redirect_matches",
    "single_params",
    "verify_code_verifier",
]
