"""add_routes: routers joined to the app's own route list, matched once per request."""

from __future__ import annotations

import httpx
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute


async def test_plain_routers_join_the_app_and_prefixed_ones_keep_include_semantics() -> None:
    from shared.service.routing import add_routes

    plain, prefixed = APIRouter(), APIRouter(prefix="/v1")

    @plain.get("/a")
    async def a() -> dict[str, str]:
        return {"route": "a"}

    @prefixed.get("/b")
    async def b() -> dict[str, str]:
        return {"route": "b"}

    app = FastAPI()
    add_routes(app, plain, prefixed)
    # The plain router's route object is the app's own (no nested router to match first).
    assert any(isinstance(r, APIRoute) and r.path == "/a" for r in app.router.routes)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        assert (await c.get("/a")).json() == {"route": "a"}
        assert (await c.get("/v1/b")).json() == {"route": "b"}
        assert (await c.get("/b")).status_code == 404
    paths = app.openapi()["paths"]
    assert set(paths) == {"/a", "/v1/b"}
