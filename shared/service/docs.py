"""Swagger UI at /docs, from our own origin: its assets come from the `fastapi-offline` package
(no CDN, so no third-party script runs on an origin whose pages hold tokens), and the page has
no inline script, so it works under the strict Content-Security-Policy. ReDoc is not served: it
needs inline styles."""

from __future__ import annotations

import html
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.requests import Request

SWAGGER_ASSETS = Path(fastapi_offline.__file__).parent / "static"
OUR_ASSETS = Path(__file__).parent / "docs_assets"
ASSETS_PATH = "/docs-assets"


def install_docs(app: FastAPI, *, client_id: str, scopes: str) -> None:
    """Serve /docs. Create the app with `docs_url=None, redoc_url=None`."""
    title = html.escape(app.title)

    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        assets = f"{root}{ASSETS_PATH}"
        page = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} - API docs</title>
<link rel="icon" href="{assets}/swagger/favicon.png">
<link rel="stylesheet" href="{assets}/swagger/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{root}{app.openapi_url}"
     data-client-id="{html.escape(client_id)}" data-scopes="{html.escape(scopes)}"></div>
<script src="{assets}/swagger/swagger-ui-bundle.js"></script>
<script src="{assets}/swagger-init.js"></script>
</body>
</html>
"""
        return HTMLResponse(page, headers={"Cache-Control": "no-cache"})

    app.add_route("/docs", docs, methods=["GET"], include_in_schema=False)
    app.mount(f"{ASSETS_PATH}/swagger", StaticFiles(directory=SWAGGER_ASSETS), name="swagger")
    app.mount(ASSETS_PATH, StaticFiles(directory=OUR_ASSETS), name="docs-assets")


__all__ = ["install_docs"]
