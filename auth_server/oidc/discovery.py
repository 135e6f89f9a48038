"""The metadata document: RFC 8414 §2 and OpenID Connect Discovery 1.0 §3, one document served
at both addresses (contract §8.3: the RFC 8414 document gains the same endpoints)."""

from __future__ import annotations

from typing import Any

from auth_server.sessions.authentication import ACR_VALUES

CLAIMS = [
    "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "sid", "amr", "acr", "at_hash",
    "preferred_username", "email", "email_verified",
]  # fmt: skip


def provider_metadata(issuer: str, *, grant_types: list[str], scopes: list[str]) -> dict[str, Any]:
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "userinfo_endpoint": f"{issuer}/userinfo",
        "end_session_endpoint": f"{issuer}/logout",
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "revocation_endpoint": f"{issuer}/revoke",
        "introspection_endpoint": f"{issuer}/introspect",
        "revocation_feed_endpoint": f"{issuer}/revocations",
        "grant_types_supported": grant_types,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,
        "scopes_supported": scopes,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "acr_values_supported": list(ACR_VALUES),
        "claims_supported": CLAIMS,
        "prompt_values_supported": ["none", "login", "consent", "select_account", "create"],
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "claims_parameter_supported": False,
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "revocation_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "introspection_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
        ],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256"],
        "service_documentation": f"{issuer}/docs",
    }


__all__ = ["CLAIMS", "provider_metadata"]
