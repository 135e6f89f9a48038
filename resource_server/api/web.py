"""The notes web page: static HTML/CSS/JS, plus the one piece of configuration it needs."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

WEB_DIR = Path(__file__).resolve().parent.parent / "web"

router = APIRouter(include_in_schema=False)


@router.get("/")
async def index() -> FileResponse:
    return FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})


@router.get("/web-config.json")
async def web_config(request: Request) -> dict[str, str]:
    """Where the page logs in and out: the auth server's endpoints, from its metadata if known."""
    issuer: str = request.app.state.settings.issuer
    metadata = getattr(request.app.state, "auth_metadata", None) or {}
    return {
        "issuer": issuer,
        "token_endpoint": metadata.get("token_endpoint", f"{issuer}/token"),
        "revocation_endpoint": metadata.get("revocation_endpoint", f"{issuer}/revoke"),
    }


def mount_web(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")
