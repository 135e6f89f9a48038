"""Reading OAuth form bodies strictly (RFC 6749 §3.2 and appendix B).

The token, revoke and introspect endpoints read the raw form themselves, so that every problem
is an RFC 6749 `invalid_request` and never FastAPI's 422.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import Request
from starlette.datastructures import UploadFile

from auth_server.oauth.errors import InvalidRequest


async def read_oauth_form(request: Request, max_field_length: int) -> dict[str, str]:
    """The form's parameters. The body's size was capped before this reads it
    (AUTH_MAX_BODY_BYTES, shared.service.edge: 413)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise InvalidRequest("the request body must be application/x-www-form-urlencoded")
    body = await request.body()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("the request body is not UTF-8") from None
    try:
        pairs = parse_qsl(
            text, keep_blank_values=True, max_num_fields=50, encoding="utf-8", errors="strict"
        )
    except UnicodeDecodeError:
        raise InvalidRequest("a parameter is not valid UTF-8") from None
    except ValueError:
        raise InvalidRequest("too many parameters") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if isinstance(value, UploadFile):  # pragma: no cover - urlencoded has no files
            raise InvalidRequest("unexpected file")
        if name in form:
            # RFC 6749 §3.2: parameters MUST NOT be included more than once.
            raise InvalidRequest(f"the parameter {name[:40]!r} is repeated")
        if "\x00" in name or "\x00" in value:
            raise InvalidRequest("parameters must not contain NUL characters")
        if len(value) > max_field_length or len(name) > 64:
            raise InvalidRequest("a parameter is too long")
        form[name] = value
    # RFC 6749 §3.2: parameters sent without a value MUST be treated as omitted.
    return {k: v for k, v in form.items() if v != ""}
