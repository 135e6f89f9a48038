"""Signing in with the authorization code flow over plain HTTP, as a browser with JavaScript off
would (the hosted sign-in form, /authorize, the code exchange): for the tests that talk to real
servers without a browser (e2e, cluster)."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def code_flow(
    client: httpx.Client,
    issuer: str,
    *,
    username: str,
    password: str,
    client_id: str,
    redirect_uri: str,
    scope: str = "openid notes:read notes:write",
    token_headers: dict[str, str] | None = None,
) -> httpx.Response:
    """Sign in at the hosted page, get a code for `client_id`, exchange it: the token response.
    `client` keeps the browser's cookies (it must not follow redirects)."""
    page = client.get(f"{issuer}/login")
    assert page.status_code == 200, page.text
    fields = dict(HIDDEN.findall(page.text))
    signed_in = client.post(
        f"{issuer}/login", data=fields | {"username": username, "password": password}
    )
    assert signed_in.status_code == 303, signed_in.text
    verifier, challenge = pkce()
    params: dict[str, Any] = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": secrets.token_urlsafe(8),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    answer = client.get(f"{issuer}/authorize", params=params)
    assert answer.status_code == 302, answer.text
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    assert query["state"] == [params["state"]], query
    return client.post(
        f"{issuer}/token",
        data={
            "grant_type": "authorization_code",
            "code": query["code"][0],
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
            "client_id": client_id,
        },
        headers=token_headers,
    )


__all__ = ["code_flow", "pkce"]
