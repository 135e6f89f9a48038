"""The notes API on a real database: CRUD, ownership, pagination, limits, scopes, errors."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.resource.conftest import Issue, auth

PROBLEM = "application/problem+json"


async def _create(
    api: httpx.AsyncClient, token: str, title: str = "t", body: str = "b"
) -> dict[str, Any]:
    response = await api.post("/notes", json={"title": title, "body": body}, headers=auth(token))
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_me_answers_from_the_claims(api: httpx.AsyncClient, issue: Issue) -> None:
    response = await api.get("/me", headers=auth(issue(sub="alice")))
    assert response.status_code == 200
    body = response.json()
    assert body["sub"] == "alice" and body["client_id"] == "web" and body["sid"] == "sid-alice"
    assert set(body) == {"sub", "client_id", "scope", "exp", "sid"}


async def test_crud(api: httpx.AsyncClient, issue: Issue) -> None:
    token = issue()
    created = await api.post(
        "/notes", json={"title": "first", "body": "hello"}, headers=auth(token)
    )
    assert created.status_code == 201
    note = created.json()
    assert created.headers["Location"] == f"/notes/{note['id']}"
    assert (await api.get(f"/notes/{note['id']}", headers=auth(token))).json()["body"] == "hello"
    patched = await api.patch(f"/notes/{note['id']}", json={"body": "changed"}, headers=auth(token))
    assert patched.status_code == 200
    assert patched.json()["title"] == "first" and patched.json()["body"] == "changed"
    assert patched.json()["updated_at"] >= note["updated_at"]
    assert (await api.delete(f"/notes/{note['id']}", headers=auth(token))).status_code == 204
    gone = await api.get(f"/notes/{note['id']}", headers=auth(token))
    assert gone.status_code == 404 and gone.headers["content-type"].startswith(PROBLEM)


async def test_another_users_note_is_not_found_never_forbidden(
    api: httpx.AsyncClient, issue: Issue
) -> None:
    note = await _create(api, issue(sub="alice"))
    mallory = auth(issue(sub="mallory"))
    assert (await api.get(f"/notes/{note['id']}", headers=mallory)).status_code == 404
    assert (
        await api.patch(f"/notes/{note['id']}", json={"title": "x"}, headers=mallory)
    ).status_code == 404
    assert (await api.delete(f"/notes/{note['id']}", headers=mallory)).status_code == 404
    assert (await api.get("/notes", headers=mallory)).json()["items"] == []
    assert (
        await api.get(f"/notes/{note['id']}", headers=auth(issue(sub="alice")))
    ).status_code == 200


async def test_pages_are_newest_first_and_stable_under_inserts(
    api: httpx.AsyncClient, issue: Issue
) -> None:
    token = issue()
    ids = [(await _create(api, token, title=f"n{i}"))["id"] for i in range(5)]
    first = (await api.get("/notes", params={"limit": 2}, headers=auth(token))).json()
    assert [n["id"] for n in first["items"]] == ids[:-3:-1]
    await _create(api, token, title="inserted meanwhile")
    second = (
        await api.get(
            "/notes", params={"limit": 2, "cursor": first["next_cursor"]}, headers=auth(token)
        )
    ).json()
    assert [n["id"] for n in second["items"]] == [ids[2], ids[1]]
    third = (
        await api.get(
            "/notes", params={"limit": 2, "cursor": second["next_cursor"]}, headers=auth(token)
        )
    ).json()
    assert [n["id"] for n in third["items"]] == [ids[0]] and third["next_cursor"] is None


@pytest.mark.parametrize("cursor", ["garbage", "bjo5OTk5OTk5OTk5OTk5OTk5OTk5OTk5", "eDox", "%%%"])
async def test_a_bad_cursor_is_400(api: httpx.AsyncClient, issue: Issue, cursor: str) -> None:
    response = await api.get("/notes", params={"cursor": cursor}, headers=auth(issue()))
    assert response.status_code == 400 and response.headers["content-type"].startswith(PROBLEM)


@pytest.mark.parametrize("limit", ["0", "101", "-1", "ten"])
async def test_limits_out_of_range_are_422(
    api: httpx.AsyncClient, issue: Issue, limit: str
) -> None:
    response = await api.get("/notes", params={"limit": limit}, headers=auth(issue()))
    assert response.status_code == 422 and response.headers["content-type"].startswith(PROBLEM)


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        ({"title": "x" * 200, "body": ""}, 201),
        ({"title": "x" * 201, "body": ""}, 422),
        ({"title": "", "body": "b"}, 422),
        ({"title": "t", "body": "b" * 100_000}, 201),
        ({"title": "t", "body": "b" * 100_001}, 422),
        ({"title": "t", "body": "\u00e9" * 50_001}, 422),  # 100,002 bytes of UTF-8
        ({"title": "t", "body": "b", "owner": "mallory"}, 422),
        ({"body": "no title"}, 422),
        ({"title": 5, "body": "b"}, 422),
    ],
)
async def test_field_limits_and_unknown_fields(
    api: httpx.AsyncClient, issue: Issue, payload: dict[str, Any], status: int
) -> None:
    response = await api.post("/notes", json=payload, headers=auth(issue()))
    assert response.status_code == status, response.text
    if status == 422:
        assert response.headers["content-type"].startswith(PROBLEM)


async def test_patch_refuses_unknown_fields_and_bad_values(
    api: httpx.AsyncClient, issue: Issue
) -> None:
    token = issue()
    note = await _create(api, token)
    for payload in ({"owner": "x"}, {"title": ""}, {"title": "x" * 201}, {"id": "other"}):
        response = await api.patch(f"/notes/{note['id']}", json=payload, headers=auth(token))
        assert response.status_code == 422, payload


@pytest.mark.parametrize(
    "body", [b"{", b"not json", b"[1,2]", b'{"title": "\\ud800"}', b"\xff\xfe"]
)
async def test_malformed_json_is_a_4xx_problem(
    api: httpx.AsyncClient, issue: Issue, body: bytes
) -> None:
    response = await api.post(
        "/notes", content=body, headers=auth(issue()) | {"Content-Type": "application/json"}
    )
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"].startswith(PROBLEM)


async def test_oversized_bodies_are_413_declared_or_chunked(
    api: httpx.AsyncClient, issue: Issue
) -> None:
    big = b'{"title": "t", "body": "' + b"x" * 200_000 + b'"}'
    declared = await api.post(
        "/notes", content=big, headers=auth(issue()) | {"Content-Type": "application/json"}
    )
    assert declared.status_code == 413 and declared.headers["content-type"].startswith(PROBLEM)

    async def chunks() -> Any:
        for i in range(0, len(big), 16_384):
            yield big[i : i + 16_384]

    chunked = await api.post(
        "/notes", content=chunks(), headers=auth(issue()) | {"Content-Type": "application/json"}
    )
    assert chunked.status_code == 413 and chunked.headers["content-type"].startswith(PROBLEM)
    assert (await api.get("/notes", headers=auth(issue()))).json()["items"] == []


async def test_scopes_are_enforced_with_insufficient_scope(
    api: httpx.AsyncClient, issue: Issue
) -> None:
    reader = auth(issue(scope="notes:read"))
    denied = await api.post("/notes", json={"title": "t"}, headers=reader)
    assert denied.status_code == 403
    assert 'error="insufficient_scope"' in denied.headers["WWW-Authenticate"]
    assert 'scope="notes:write"' in denied.headers["WWW-Authenticate"]
    assert (await api.get("/notes", headers=reader)).status_code == 200
    writer = auth(issue(scope="notes:write"))
    assert (await api.get("/notes", headers=writer)).status_code == 403


async def test_challenges_for_missing_and_bad_tokens(api: httpx.AsyncClient, issue: Issue) -> None:
    anonymous = await api.get("/notes")
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"] == 'Bearer realm="notes-api"'
    bad = await api.get("/notes", headers=auth("x.y.z"))
    assert bad.status_code == 401 and 'error="invalid_token"' in bad.headers["WWW-Authenticate"]
    other_audience = await api.get("/me", headers=auth(issue(aud="another-api")))
    assert other_audience.status_code == 401
    expired = await api.get("/me", headers=auth(issue(exp=1000, iat=900)))
    assert expired.status_code == 401 and "expired" in expired.headers["WWW-Authenticate"]


async def test_a_revoked_session_is_refused_even_from_the_cache(
    api: httpx.AsyncClient, issue: Issue, resource_app: Any
) -> None:
    import time

    token = issue(sub="bob")
    assert (await api.get("/me", headers=auth(token))).status_code == 200
    resource_app.state.resource.denylist.add_sid("sid-bob", time.time() + 60)
    refused = await api.get("/me", headers=auth(token))
    assert refused.status_code == 401 and "revoked" in refused.headers["WWW-Authenticate"]


async def test_health_readiness_metrics_and_openapi(
    api: httpx.AsyncClient, resource_settings: Any
) -> None:
    assert (await api.get("/healthz")).json() == {"status": "ok"}
    assert (await api.get("/readyz")).status_code == 200
    metrics = await api.get("/metrics")
    assert metrics.status_code == 200 and "token_verification_failures" in metrics.text
    schema = (await api.get("/openapi.json")).json()
    flow = schema["components"]["securitySchemes"]["OAuth2"]["flows"]["password"]
    assert flow["tokenUrl"] == f"{resource_settings.issuer}/token"
    assert set(flow["scopes"]) == {"notes:read", "notes:write"}
    docs = await api.get("/docs")
    assert docs.status_code == 200 and 'data-client-id="web"' in docs.text
    # From our own origin (no CDN), and with no inline script: the strict CSP allows it.
    assert "cdn." not in docs.text and "<script>" not in docs.text
    assert "script-src 'self'" in docs.headers["Content-Security-Policy"]
    for asset in ("/docs-assets/swagger/swagger-ui-bundle.js", "/docs-assets/swagger-init.js"):
        assert (await api.get(asset)).status_code == 200


async def test_the_web_page_and_its_configuration(
    api: httpx.AsyncClient, resource_settings: Any
) -> None:
    page = await api.get("/")
    assert page.status_code == 200 and "<title>Notes</title>" in page.text
    config = (await api.get("/web-config.json")).json()
    assert config["token_endpoint"] == f"{resource_settings.issuer}/token"
    assert (await api.get("/static/app.js")).status_code == 200


async def test_hostile_cursors_and_nul_text_are_4xx_never_500(
    api: httpx.AsyncClient, issue: Issue
) -> None:
    """Issue 9: `/notes?cursor=bjrCsg` (base64 of "n:²") and U+0000 in a note (PostgreSQL
    refuses it) were 500s."""
    headers = auth(issue())
    for cursor in ("bjrCsg", "n:1", "%%%", "bjoxMjM0NTY3ODkwMTIzNDU2Nzg5"):
        response = await api.get("/notes", params={"cursor": cursor}, headers=headers)
        assert response.status_code == 400, cursor
    for body in ({"title": "a\x00b"}, {"title": "ok", "body": "x\x00y"}):
        response = await api.post("/notes", json=body, headers=headers)
        assert response.status_code == 422, body
    created = (await api.post("/notes", json={"title": "fine"}, headers=headers)).json()
    patched = await api.patch(f"/notes/{created['id']}", json={"body": "\x00"}, headers=headers)
    assert patched.status_code == 422


async def test_every_response_carries_the_security_headers(
    api: httpx.AsyncClient, issue: Issue
) -> None:
    for response in (
        await api.get("/healthz"),
        await api.get("/notes"),  # 401
        await api.get("/notes/nope", headers=auth(issue())),  # 404
        await api.get("/"),  # the web page
    ):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert "Strict-Transport-Security" not in response.headers  # plain HTTP here
    page = await api.get("/")
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "'unsafe-inline'" not in policy
    assert "frame-ancestors 'none'" in policy
    assert "connect-src 'self' http://127.0.0.1:8000" in policy  # the auth server, for the page
    assert "Content-Security-Policy" not in (await api.get("/healthz")).headers


async def test_no_cross_origin_access_unless_origins_are_configured(
    api: httpx.AsyncClient, issue: Issue
) -> None:
    # The page is served by this server (same origin): by default no origin is let in.
    preflight = await api.options(
        "/notes",
        headers={"Origin": "https://notes.example", "Access-Control-Request-Method": "POST"},
    )
    assert "Access-Control-Allow-Origin" not in preflight.headers
    simple = await api.get("/me", headers=auth(issue()) | {"Origin": "https://notes.example"})
    assert simple.status_code == 200 and "Access-Control-Allow-Origin" not in simple.headers


async def test_configured_origins_get_cors_with_the_refresh_headers_exposed(
    resource_settings: Any, signing_key: Any, issue: Issue
) -> None:
    from resource_server.main import create_app
    from shared.keys import StaticKeySet, VerificationKey
    from tests.integration.resource.conftest import KID

    settings = resource_settings.model_copy(update={"cors_origins": ["https://notes.example"]})
    keys = StaticKeySet([VerificationKey(KID, signing_key.public_key(), "RS256")])
    app = create_app(settings, key_source=keys, revocation_feed=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as api,
    ):
        preflight = await api.options(
            "/notes",
            headers={
                "Origin": "https://notes.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, refresh-token",
            },
        )
        other = await api.options(
            "/notes",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
        simple = await api.get("/me", headers=auth(issue()) | {"Origin": "https://notes.example"})
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://notes.example"
    assert "Access-Control-Allow-Credentials" not in preflight.headers  # bearer tokens, no cookies
    assert "Access-Control-Allow-Origin" not in other.headers
    exposed = simple.headers["Access-Control-Expose-Headers"].lower()
    assert "new-access-token" in exposed and "www-authenticate" in exposed
