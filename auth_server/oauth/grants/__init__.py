"""The grants the token endpoint offers, by `grant_type`."""

from __future__ import annotations

from auth_server.oauth.grants.authorization_code import AuthorizationCodeGrant
from auth_server.oauth.grants.base import Grant, TokenRequest
from auth_server.oauth.grants.client_credentials import ClientCredentialsGrant
from auth_server.oauth.grants.password import PasswordGrant
from auth_server.oauth.grants.refresh_token import RefreshTokenGrant

__all__ = [
    "AuthorizationCodeGrant",
    "ClientCredentialsGrant",
    "Grant",
    "PasswordGrant",
    "RefreshTokenGrant",
    "TokenRequest",
]
