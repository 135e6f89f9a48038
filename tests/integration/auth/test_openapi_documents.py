"""Issue 9, schema fuzzing: what the fuzzer found at the auth server, and what its document
promises (tests/fuzz checks the rest with schemathesis)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest


@pytest.mark.parametrize("cursor", ["9223372036854775808", "99999999999999999999"])
async def test_an_admin_events_cursor_too_large_for_the_database_is_a_400(
    auth_client: httpx.AsyncClient, admin_tokens: dict[str, Any], cursor: str
) -> None:
    """Found by the fuzzer: 19 or 20 digits passed the check, and SQLite's INTEGER refused the
    number (OverflowError: 500)."""
    response = await auth_client.get(
        "/admin/events",
        params={"cursor": cursor},
        headers={"Authorization": f"Bearer {admin_tokens['access_token']}"},
    )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/sessions", {"GET", "DELETE"}),
        ("PATCH", "/users", {"POST"}),
        ("POST", "/sessions/abc", {"DELETE"}),
    ],
)
async def test_a_405_lists_every_method_of_the_resource(
    auth_client: httpx.AsyncClient, method: str, path: str, allowed: set[str]
) -> None:
    """RFC 9110 §15.5.6. Found by the fuzzer: `GET /sessions` and `DELETE /sessions` are two
    routes, and the 405 named only the first one's methods."""
    response = await auth_client.request(method, path)
    assert response.status_code == 405
    assert set(response.headers["allow"].replace(" ", "").split(",")) - {"HEAD"} == allowed
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_the_document_declares_errors_as_they_are_sent(
    auth_client: httpx.AsyncClient,
) -> None:
    document = (await auth_client.get("/openapi.json")).json()
    paths = document["paths"]
    problem = {"$ref": "#/components/schemas/Problem"}
    # Validation errors are problem+json, not FastAPI's own body.
    assert paths["/users"]["post"]["responses"]["422"]["content"] == {
        "application/problem+json": {"schema": problem}
    }
    assert "HTTPValidationError" not in document["components"]["schemas"]
    # Bearer-protected routes: 401 with the RFC 6750 challenge.
    unauthorized = paths["/users/me"]["get"]["responses"]["401"]
    assert unauthorized["headers"]["WWW-Authenticate"]["required"] is True
    # The OAuth endpoints: RFC 6749 §5.2 JSON errors, 429 and 503 with Retry-After, 413.
    token = paths["/token"]["post"]["responses"]
    oauth_error = {"$ref": "#/components/schemas/OAuthError"}
    assert token["400"]["content"]["application/json"]["schema"] == oauth_error
    assert token["429"]["headers"]["Retry-After"]["required"] is True
    assert set(token["503"]["content"]) == {"application/json", "application/problem+json"}
    assert token["413"]["content"]["application/problem+json"]["schema"] == problem
    assert set(document["components"]["schemas"]["OAuthError"]["properties"]["error"]["enum"]) >= {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
    }
    # Revalidation of the key set.
    assert "304" in paths["/.well-known/jwks.json"]["get"]["responses"]
    # The real constraints of a sign-up.
    new_user = document["components"]["schemas"]["NewUser"]["properties"]
    assert new_user["password"]["minLength"] == 10
    assert new_user["email"]["format"] == "email"
