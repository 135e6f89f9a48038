"""The notes web page: static HTML, CSS and JavaScript modules, plus the configuration it needs.

The page is a public OAuth client of its own (`web-page`, contract §8.1): it signs in through
the auth server's hosted sign-in (authorization code + PKCE, OpenID Connect), and comes back to
`/callback` with a code; the auth server's answer to the code puts the refresh token in an
HttpOnly cookie, and the access token stays in the page's memory. Nothing here handles a token:
the resource server only serves files and tells the page where the auth server is.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import Scope

from resource_server.api.deps import resource_state
from shared.service.routing import add_routes

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
PAGE_CLIENT_ID = "web-page"
PAGE_SCOPE = "openid profile email notes:read notes:write"

router = APIRouter(include_in_schema=False)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _same_site_redirect(request: Request, issuer: str) -> str | None:
    """On loopback, the page must be opened on the auth server's own host name: `localhost` and
    `127.0.0.1` are different sites, and the browser keeps a SameSite=Strict cookie set by one
    away from pages of the other (the session would not survive a reload). Only loopback names
    are rewritten, never a public host."""
    issuer_host = urlsplit(issuer).hostname or ""
    page_host = request.url.hostname or ""
    if page_host == issuer_host or not (_is_loopback(page_host) and _is_loopback(issuer_host)):
        return None
    netloc = f"[{issuer_host}]" if ":" in issuer_host else issuer_host
    if request.url.port is not None:
        netloc = f"{netloc}:{request.url.port}"
    return str(request.url.replace(netloc=netloc))


@router.get("/")
async def index(request: Request) -> Response:
    issuer = resource_state(request).settings.issuer
    redirect = _same_site_redirect(request, issuer)
    if redirect is not None:
        return RedirectResponse(redirect, status_code=307)
    # The strict Content-Security-Policy of HTML responses comes from the service's security
    # edge middleware (shared.service.edge): no inline script or style anywhere here.
    return FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})


@router.get("/callback")
async def callback() -> Response:
    """Where the auth server sends the browser back with a code (`{origin}/callback`, registered
    for `web-page`): the page itself, which exchanges the code. Never redirected to another host
    name: the sign-in's verifier waits in this origin's sessionStorage."""
    return FileResponse(
        WEB_DIR / "index.html",
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


@router.get("/web-config.json")
async def web_config(request: Request, response: Response) -> dict[str, Any]:
    """Where the page logs in and out: the auth server's endpoints, from its metadata if known,
    and the page's own client."""
    state = resource_state(request)
    issuer = state.settings.issuer
    metadata = state.auth_metadata
    response.headers["Cache-Control"] = "no-cache"
    base = issuer.rstrip("/")
    return {
        "issuer": base,
        "authorization_endpoint": metadata.get("authorization_endpoint", f"{base}/authorize"),
        "token_endpoint": metadata.get("token_endpoint", f"{base}/token"),
        "revocation_endpoint": metadata.get("revocation_endpoint", f"{base}/revoke"),
        "end_session_endpoint": metadata.get("end_session_endpoint", f"{base}/logout"),
        "client_id": PAGE_CLIENT_ID,
        "scope": PAGE_SCOPE,
    }


class PageFiles(StaticFiles):
    """The page's modules and styles, revalidated on every load (by ETag), so that a changed
    module is never mixed with cached ones."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.setdefault("Cache-Control", "no-cache")
        return response


def mount_web(app: FastAPI) -> None:
    add_routes(app, router)
    app.mount("/static", PageFiles(directory=WEB_DIR), name="static")
