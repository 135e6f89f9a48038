"""The services' one middleware (shared.service.edge): body cap, security headers, extra headers.

Driven at the ASGI level where the HTTP client can't say it (HTTP/2 scopes, both framing
headers at once)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from starlette.types import Message, Scope

from shared.service.edge import EdgeMiddleware, content_security_policy
from shared.service.problem import install_problem_handlers

LIMIT = 64


def build(extra: Any = None) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"received": len(await request.body())}

    @app.get("/page", response_class=HTMLResponse)
    async def page() -> str:
        return "<p>hi</p>"

    @app.get("/json")
    async def json() -> dict[str, bool]:
        return {"ok": True}

    app.add_middleware(
        EdgeMiddleware,
        max_body_bytes=LIMIT,
        csp=content_security_policy(["https://auth.example"]),
        extra_headers=extra,
    )
    return app


def client(app: FastAPI, base: str = "http://t") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base)


async def raw(
    app: FastAPI, headers: list[tuple[bytes, bytes]], chunks: list[bytes], **scope: Any
) -> tuple[int, dict[bytes, bytes], bytes]:
    """One POST /echo straight through ASGI: (status, response headers, body)."""
    full: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/echo",
        "raw_path": b"/echo",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("t", 80),
        "state": {},
    } | scope
    pending = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(full, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), body


async def test_every_response_carries_the_security_headers_and_html_the_policy() -> None:
    async with client(build()) as c:
        page, data = await c.get("/page"), await c.get("/json")
    for response in (page, data):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["x-frame-options"] == "DENY"
        assert "strict-transport-security" not in response.headers  # plain HTTP
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "connect-src 'self' https://auth.example" in policy
    assert "content-security-policy" not in data.headers


async def test_hsts_only_over_tls() -> None:
    async with client(build(), base="https://t") as c:
        response = await c.get("/json")
    assert response.headers["strict-transport-security"].startswith("max-age=")


async def test_extra_headers_are_asked_for_each_response() -> None:
    seen: list[str] = []

    def extra(scope: Scope) -> list[tuple[bytes, bytes]]:
        seen.append(scope["path"])
        return [(b"x-extra", scope["path"].encode())]

    async with client(build(extra)) as c:
        response = await c.get("/json")
    assert response.headers["x-extra"] == "/json" and seen == ["/json"]


@pytest.mark.parametrize("declared", [b"65", b"99999999999999999999", b"-1", b"1e3", b"\xd9\xa1"])
async def test_a_declared_length_over_the_cap_or_not_a_number_is_413(declared: bytes) -> None:
    status, headers, body = await raw(build(), [(b"content-length", declared)], [b""])
    assert status == 413
    assert headers[b"content-type"] == b"application/problem+json"
    assert headers[b"x-content-type-options"] == b"nosniff"  # the refusal is a response too
    assert b"64 bytes" in body


async def test_a_chunked_body_is_counted_as_it_streams() -> None:
    small = await raw(build(), [(b"transfer-encoding", b"chunked")], [b"a" * 40, b"b" * 24])
    assert small[0] == 200 and small[2] == b'{"received":64}'
    big = await raw(build(), [(b"transfer-encoding", b"chunked")], [b"a" * 40, b"b" * 40])
    assert big[0] == 413


async def test_transfer_encoding_wins_over_a_small_declared_length() -> None:
    # RFC 9112 §6.3: with both, the length is the chunked one; the declared 10 proves nothing.
    headers = [(b"content-length", b"10"), (b"transfer-encoding", b"chunked")]
    status, _, _ = await raw(build(), headers, [b"a" * 50, b"b" * 50])
    assert status == 413


async def test_http2_bodies_without_framing_headers_are_counted() -> None:
    status, _, _ = await raw(build(), [], [b"a" * 50, b"b" * 50], http_version="2")
    assert status == 413
    status, _, body = await raw(build(), [], [b"a" * 10], http_version="2")
    assert status == 200 and body == b'{"received":10}'


async def test_a_request_within_the_cap_passes_untouched() -> None:
    status, _, body = await raw(build(), [(b"content-length", b"64")], [b"x" * 64])
    assert status == 200 and body == b'{"received":64}'
