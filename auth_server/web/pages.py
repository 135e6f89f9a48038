"""Rendering the hosted pages: autoescaped Jinja2 templates, each response with its CSRF key,
`Cache-Control: no-store`, and a strict Content-Security-Policy of its own.

The policy allows no inline script or style and nothing from another origin, with one addition:
Chromium applies a page's `form-action` to every redirect that follows the form's POST, so a page
whose form ends in a redirect to an app (sign-in, consent, logout confirmation) names that app's
redirect origin in `form-action`, and nothing else. (`form-action 'self'` alone blocks the 303 to
the app in Chromium; the browser tests sign in across origins to prove the fix.)
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

from auth_server.web.csrf import CsrfGuard

TEMPLATES = Path(__file__).with_name("templates")
STATIC = Path(__file__).with_name("static")
ASSETS_PATH = "/assets"


def origin_source(uri: str) -> str | None:
    """A CSP source for the origin of `uri` (`https://app.example`, or `com.example.app:` for a
    native app's private-use scheme)."""
    parts = urlsplit(uri)
    if not parts.scheme:
        return None
    if not parts.netloc:
        return f"{parts.scheme}:"
    if any(c in parts.netloc for c in " ;,'\""):
        return None
    return f"{parts.scheme}://{parts.netloc}"


def page_policy(form_action: Iterable[str] = ()) -> str:
    sources = ["'self'"]
    for uri in form_action:
        source = origin_source(uri)
        if source and source not in sources:
            sources.append(source)
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
        f"frame-ancestors 'none'; form-action {' '.join(sources)}"
    )


def base_path(issuer: str) -> str:
    """The issuer's path (behind a proxy at /auth, say): every link and form starts here."""
    return urlsplit(issuer).path.rstrip("/")


class Pages:
    def __init__(self, *, issuer: str, csrf: CsrfGuard) -> None:
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES),
            autoescape=True,  # every template is HTML: escape everything by default
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._base = base_path(issuer)
        self.csrf = csrf

    @property
    def base(self) -> str:
        """The issuer's path (behind a proxy at /auth, say): every link and form starts here."""
        return self._base

    def render(
        self,
        request: Request,
        template: str,
        *,
        status: int = 200,
        purpose: str | None = None,
        flow: str | None = None,
        form_action: Iterable[str] = (),
        **context: Any,
    ) -> HTMLResponse:
        key, new_key = self.csrf.ensure_key(request)
        html = self._env.get_template(template).render(
            base=self._base,
            assets=f"{self._base}{ASSETS_PATH}",
            csrf_token=self.csrf.token(key, purpose, flow) if purpose else "",
            flow=flow,
            **context,
        )
        response = HTMLResponse(
            html,
            status_code=status,
            headers={
                "Cache-Control": "no-store",
                "Pragma": "no-cache",
                "Content-Security-Policy": page_policy(form_action),
            },
        )
        if new_key:
            self.csrf.set_key(response, key, path=self._base or "/")
        return response

    def error(
        self, request: Request, status: int, title: str, message: str, **context: Any
    ) -> HTMLResponse:
        """A page for a person: what happened, in words, and what to do next."""
        return self.render(
            request, "error.html", status=status, title=title, message=message, **context
        )


def pages_of(request: Request) -> Pages:
    """The app's page renderer (built by `install_pages`)."""
    pages: Pages = request.app.state.pages
    return pages


def install_pages(app: Any, issuer: str, key_encryption_secret: bytes) -> Pages:
    pages = Pages(issuer=issuer, csrf=CsrfGuard(key_encryption_secret, issuer))
    app.state.pages = pages
    app.mount(ASSETS_PATH, StaticFiles(directory=STATIC), name="hosted-pages-assets")
    return pages


__all__ = [
    "ASSETS_PATH",
    "STATIC",
    "Pages",
    "base_path",
    "install_pages",
    "origin_source",
    "page_policy",
    "pages_of",
]
