"""Authlib's OAuth 2.0 client (httpx), an independent client, against notes-auth: code + PKCE
for a confidential first-party client (client_secret_basic), and the id_token checked with
Authlib's own JOSE and OpenID Connect claim rules."""

from __future__ import annotations

import httpx
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import OAuth2Client
from authlib.jose import JsonWebKey, JsonWebToken
from authlib.oidc.core import CodeIDToken

from tests.interop.conftest import Provider, browser

REDIRECT = "http://127.0.0.1:9/authlib/callback"


def test_authlib_client_completes_code_with_pkce(provider: Provider) -> None:
    output = provider.cli(
        "clients", "create", "authlib-app",
        "--confidential", "--first-party",
        "--grant", "authorization_code", "--grant", "refresh_token",
        "--redirect-uri", REDIRECT,
    )  # fmt: skip
    secret = output.strip().splitlines()[-1]
    metadata = httpx.get(f"{provider.issuer}/.well-known/openid-configuration").json()
    verifier = generate_token(64)
    nonce = generate_token(20)
    with (
        OAuth2Client(
            "authlib-app",
            secret,
            scope="openid profile email",
            redirect_uri=REDIRECT,
            code_challenge_method="S256",
            token_endpoint_auth_method="client_secret_basic",
        ) as app,
        browser() as person,
    ):
        url, state = app.create_authorization_url(
            metadata["authorization_endpoint"], code_verifier=verifier, nonce=nonce
        )
        back = provider.browse(person, url, REDIRECT)
        token = app.fetch_token(
            metadata["token_endpoint"], authorization_response=back, code_verifier=verifier
        )
        assert token["token_type"] == "Bearer" and token["refresh_token"]

        keys = JsonWebKey.import_key_set(httpx.get(metadata["jwks_uri"]).json())
        claims = JsonWebToken(["RS256"]).decode(
            token["id_token"],
            keys,
            claims_cls=CodeIDToken,
            claims_options={"iss": {"essential": True, "value": provider.issuer}},
            claims_params={
                "nonce": nonce,
                "client_id": "authlib-app",
                "access_token": token["access_token"],
            },
        )
        claims.validate()  # exp, iat, aud, nonce, at_hash, auth_time (OIDC Core §3.1.3.7)
        assert claims["aud"] == "authlib-app" and state

        info = app.get(metadata["userinfo_endpoint"]).json()
        assert info["sub"] == claims["sub"] and info["preferred_username"] == provider.username
