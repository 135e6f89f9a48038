"""Issue 9, schema fuzzing: what the fuzzer found at the notes API, and what its document
promises (tests/fuzz checks the rest with schemathesis)."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.resource.conftest import Issue, auth


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/notes", {"GET", "POST"}),
        ("OPTIONS", "/notes/abc", {"GET", "PATCH", "DELETE"}),
    ],
)
async def test_a_405_lists_every_method_of_the_resource(
    api: httpx.AsyncClient, issue: Issue, method: str, path: str, allowed: set[str]
) -> None:
    """RFC 9110 §15.5.6. Found by the fuzzer: the 405 named only the first matching route's
    methods (`Allow: GET` at /notes, which also takes POST)."""
    response = await api.request(method, path, headers=auth(issue()))
    assert response.status_code == 405
    assert set(response.headers["allow"].replace(" ", "").split(",")) - {"HEAD"} == allowed


async def test_the_document_declares_what_the_notes_api_sends(api: httpx.AsyncClient) -> None:
    document = (await api.get("/openapi.json")).json()
    notes = document["paths"]["/notes"]
    created = notes["post"]["responses"]
    assert created["201"]["headers"]["Location"]["required"] is True
    for status in ("400", "401", "403", "413", "422", "503"):
        assert "application/problem+json" in created[status]["content"], status
    assert created["403"]["headers"]["WWW-Authenticate"]["required"] is True
    assert created["503"]["headers"]["Retry-After"]["required"] is True
    # The token is sent as an RFC 6750 bearer token (the OAuth2 flow says how to get one).
    assert {"bearerToken": ["notes:write"]} in notes["post"]["security"]
    # Transparent refresh: the request header and the New-* response headers.
    parameters = {p["name"] for p in notes["get"]["parameters"]}
    assert {"Refresh-Token", "limit", "cursor"} <= parameters
    assert "New-Access-Token" in notes["get"]["responses"]["200"]["headers"]
    # The stored text's real constraints.
    title = document["components"]["schemas"]["NoteCreate"]["properties"]["title"]
    assert title["maxLength"] == 200
    assert title["not"] == {"pattern": "\\u0000"}
