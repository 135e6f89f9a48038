"""Reading a hosted form's body: URL-encoded, UTF-8, each field once, bounded."""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request

MAX_FIELD = 4096


async def read_form(request: Request) -> dict[str, str] | None:
    """The fields, or None when the body is not a well-formed form (a page says so)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return None
    try:
        text = (await request.body()).decode("utf-8")
        pairs = parse_qsl(
            text, keep_blank_values=True, max_num_fields=30, encoding="utf-8", errors="strict"
        )
    except (UnicodeDecodeError, ValueError):
        return None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form or "\x00" in name or "\x00" in value or len(value) > MAX_FIELD:
            return None
        form[name] = value
    return form


__all__ = ["read_form"]
