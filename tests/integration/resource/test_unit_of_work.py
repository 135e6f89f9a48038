"""One unit of work per request, committed before the response is sent: a client that gets 201
may use what it created at once, from any replica. (FastAPI ends a dependency with yield after
the response unless it is declared with scope="function": this caught that.)"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

from auth_server.persistence.models import LoginSession, User
from resource_server.persistence.models import Note
from tests.integration.auth.conftest import PASSWORD
from tests.integration.resource.conftest import Issue, auth


async def post(
    app: Any,
    path: str,
    body: dict[str, Any],
    log: list[str],
    headers: dict[str, str],
    *,
    form: bool = False,
) -> int:
    """Drive the ASGI app directly, noting in `log` when the response starts."""
    payload = urlencode(body).encode() if form else json.dumps(body).encode()
    content_type = b"application/x-www-form-urlencoded" if form else b"application/json"
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", content_type), (b"host", b"test")]
        + [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 5000),
        "server": ("test", 80),
        "state": {},
    }
    received = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal received
        if received:
            return {"type": "http.disconnect"}
        received = True
        return {"type": "http.request", "body": payload, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            log.append("response started")

    await app(scope, receive, send)
    return status


@pytest.fixture
def log() -> Iterator[list[str]]:
    """Notes the commit of the session that wrote the user or the note (other sessions, such as
    the key store's background reloads, also commit meanwhile)."""
    entries: list[str] = []
    writers: set[int] = set()

    def flushed(session: Session, _: object) -> None:
        if any(isinstance(obj, User | Note | LoginSession) for obj in session.new):
            writers.add(id(session))

    def committed(session: Session) -> None:
        if id(session) in writers:
            writers.discard(id(session))
            entries.append("committed")

    event.listen(Session, "after_flush", flushed)
    event.listen(Session, "after_commit", committed)
    yield entries
    event.remove(Session, "after_flush", flushed)
    event.remove(Session, "after_commit", committed)


async def test_a_sign_up_is_committed_before_the_response_starts(
    auth_app: Any, log: list[str]
) -> None:
    body = {"username": "early-bird", "email": "early@example.com", "password": PASSWORD}
    assert await post(auth_app, "/users", body, log, {}) == 201
    assert log == ["committed", "response started"]


async def test_a_login_is_committed_before_the_response_starts(
    auth_app: Any, log: list[str]
) -> None:
    """The token endpoint opens its unit of work itself (no FastAPI dependency): the same
    order as a dependency with scope="function"."""
    body = {"username": "early-login", "email": "login@example.com", "password": PASSWORD}
    assert await post(auth_app, "/users", body, log, {}) == 201
    log.clear()
    form = {
        "grant_type": "password",
        "client_id": "web",
        "username": "early-login",
        "password": PASSWORD,
    }
    assert await post(auth_app, "/token", form, log, {}, form=True) == 200
    assert log == ["committed", "response started"]


async def test_a_note_is_committed_before_the_response_starts(
    resource_app: Any, issue: Issue, log: list[str]
) -> None:
    body = {"title": "now", "body": "visible"}
    assert await post(resource_app, "/notes", body, log, auth(issue())) == 201
    assert log == ["committed", "response started"]
