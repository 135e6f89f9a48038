"""The grant registry: grant_type -> handler."""

from __future__ import annotations

from auth_server.oauth.grants.base import GrantHandler, TokenRequest
from auth_server.oauth.grants.client_credentials import client_credentials_grant
from auth_server.oauth.grants.password import password_grant
from auth_server.oauth.grants.refresh_token import refresh_token_grant

GRANTS: dict[str, GrantHandler] = {
    "password": password_grant,
    "refresh_token": refresh_token_grant,
    "client_credentials": client_credentials_grant,
}

__all__ = ["GRANTS", "GrantHandler", "TokenRequest"]
