"""The one middleware of both services (pure ASGI): what every request and response passes.

- Bodies are capped before anything parses them: 413 problem+json, for a declared
  Content-Length and for chunked bodies counted as they stream.
- Security headers on every response: `X-Content-Type-Options: nosniff`,
  `Referrer-Policy: no-referrer`, `X-Frame-Options: DENY`; on HTML a strict
  `Content-Security-Policy` (nothing inline, nothing from another origin but the API origins the
  page talks to); over TLS `Strict-Transport-Security`.
- Whatever `extra_headers(scope)` returns (the resource server: the `New-*` headers of a
  transparent refresh, `shared.fastapi.refreshed_token_headers`).

Why one class of our own rather than three: every middleware layer is another coroutine and
another `send` wrapper per request, and on this machine each layer costs measurable throughput
on a small endpoint (`make bench`, docs/benchmarks.md). Starlette has no middleware for either
job that is not `BaseHTTPMiddleware`, the slowest kind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.fastapi import problem_response
from shared.text import is_ascii_number

ALWAYS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)
HSTS = (b"strict-transport-security", b"max-age=63072000; includeSubDomains")
HeaderPairs = list[tuple[bytes, bytes]]


def content_security_policy(connect_to: Iterable[str] = ()) -> str:
    connect = " ".join(["'self'", *sorted(set(connect_to))])
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src {connect}; font-src 'self'; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'; form-action 'self'"
    )


class BodyTooLarge(HTTPException):
    """An HTTPException, so that FastAPI's body parsing re-raises it as is (any other error
    there becomes a 400) and the problem+json handler renders the 413."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"the request body is larger than {max_bytes} bytes")


class EdgeMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        csp: str,
        extra_headers: Callable[[Scope], HeaderPairs] | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_body_bytes
        self._csp = (b"content-security-policy", csp.encode())
        self._extra = extra_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        tls = scope.get("scheme") == "https"

        async def edge_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [*message.get("headers", ()), *ALWAYS]
                if tls:
                    headers.append(HSTS)
                html = own_policy = False
                for name, value in headers:
                    # Starlette writes names in lower case; another ASGI app might not.
                    lowered = name.lower()
                    if lowered == b"content-type":
                        html = value.startswith(b"text/html")
                    elif lowered == b"content-security-policy":
                        # A page with a policy of its own (the auth server's hosted pages, whose
                        # `form-action` names the app they send the person back to) keeps it.
                        own_policy = True
                if html and not own_policy:
                    headers.append(self._csp)
                if self._extra is not None:
                    headers += self._extra(scope)
                message = {**message, "headers": headers}
            await send(message)

        declared: bytes | None = None
        streamed = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = value
            elif name == b"transfer-encoding":
                streamed = True
        if declared is not None and (
            not is_ascii_number(declared) or int(declared) > self.max_bytes
        ):
            await self._reject(scope, receive, edge_send)
            return
        # An HTTP/1.x server (h11, httptools) holds a body without Transfer-Encoding to its
        # declared length, and a request with neither header has none; HTTP/2 and later may
        # stream a body without either: count those as they come.
        if scope.get("http_version") not in ("1.0", "1.1"):
            streamed = True
        if not streamed:
            await self.app(scope, receive, edge_send)
            return
        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        try:
            await self.app(scope, counted_receive, edge_send)
        except BodyTooLarge:
            if not started:
                await self._reject(scope, receive, edge_send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(
            413,
            detail=f"the request body is larger than {self.max_bytes} bytes",
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)


__all__ = ["BodyTooLarge", "EdgeMiddleware", "content_security_policy"]
