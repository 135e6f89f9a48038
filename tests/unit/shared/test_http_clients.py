"""respx tests of the HTTP clients: the transparent refresher and the revocation feed client."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx

from shared.denylist import Denylist
from shared.refresh import AuthServerUnavailable, RefreshRejected, TransparentRefresher
from shared.revocation_feed import RevocationFeedClient
from tests.unit.shared.conftest import ISSUER, claims

TOKEN_URL = f"{ISSUER}/token"
FEED_URL = f"{ISSUER}/revocations"
PAIR = {
    "access_token": "new-access",
    "refresh_token": "new-refresh",
    "expires_in": 900,
    "scope": "notes:read",
}


async def test_concurrent_refreshes_share_one_exchange() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.05)
        return httpx.Response(200, json=PAIR)

    with respx.mock() as router:
        route = router.post(TOKEN_URL).mock(side_effect=slow)
        async with httpx.AsyncClient() as http:
            refresher = TransparentRefresher(http=http, token_endpoint=TOKEN_URL)
            pairs = await asyncio.gather(
                *(refresher.refresh("old-refresh", "web") for _ in range(6))
            )
        assert route.call_count == 1
        assert len(set(pairs)) == 1 and pairs[0].access_token == "new-access"
        form = parse_qs(route.calls[0].request.content.decode())
        assert form == {
            "grant_type": ["refresh_token"],
            "refresh_token": ["old-refresh"],
            "client_id": ["web"],
        }


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (httpx.Response(400, json={"error": "invalid_grant"}), RefreshRejected),
        (httpx.Response(401, json={"error": "invalid_client"}), RefreshRejected),
        (httpx.Response(503), AuthServerUnavailable),
        (httpx.Response(200, text="not json"), AuthServerUnavailable),
        (httpx.ConnectError("down"), AuthServerUnavailable),
        (httpx.ReadTimeout("slow"), AuthServerUnavailable),
    ],
)
async def test_refresh_failures_are_mapped(response: Any, error: type[Exception]) -> None:
    with respx.mock() as router:
        if isinstance(response, Exception):
            router.post(TOKEN_URL).mock(side_effect=response)
        else:
            router.post(TOKEN_URL).mock(return_value=response)
        async with httpx.AsyncClient() as http:
            refresher = TransparentRefresher(http=http, token_endpoint=TOKEN_URL)
            with pytest.raises(error):
                await refresher.refresh("old", "web")
            # A failure is not remembered: the next call asks again.
            with pytest.raises(error):
                await refresher.refresh("old", "web")


async def test_the_feed_client_applies_events_and_follows_the_cursor() -> None:
    now = time.time()
    deny = Denylist()
    with respx.mock() as router:
        route = router.get(FEED_URL)
        route.side_effect = [
            httpx.Response(
                200,
                json={
                    "events": [
                        {
                            "id": 1,
                            "type": "sid",
                            "value": "s1",
                            "not_before": None,
                            "expires_at": now + 60,
                        }
                    ],
                    "cursor": "1",
                    "has_more": True,
                },
            ),
            httpx.Response(
                200,
                json={
                    "events": [
                        {
                            "id": 2,
                            "type": "jti",
                            "value": "j2",
                            "not_before": None,
                            "expires_at": now + 60,
                        }
                    ],
                    "cursor": "2",
                    "has_more": False,
                },
            ),
            httpx.Response(200, json={"events": [], "cursor": "2"}),
        ]
        async with httpx.AsyncClient() as http:
            feed = RevocationFeedClient(deny, http=http, feed_url=FEED_URL, poll_interval=1)
            assert await feed.poll_once() == 2
            assert feed.cursor == "2" and feed.synced
            assert await feed.poll_once() == 0
        assert route.calls[1].request.url.params["since"] == "1"
        assert route.calls[2].request.url.params["since"] == "2"
    from shared.claims import AccessTokenClaims

    assert deny.check(AccessTokenClaims.from_payload(claims(sid="s1")), None) == "session ended"
    assert (
        deny.check(AccessTokenClaims.from_payload(claims(jti="j2", sid=None)), None)
        == "token revoked"
    )


@pytest.mark.parametrize("body", [{"events": "nope", "cursor": "1"}, {"cursor": 5}, [1, 2]])
async def test_a_malformed_feed_page_raises_and_keeps_the_cursor(body: Any) -> None:
    with respx.mock() as router:
        router.get(FEED_URL).respond(json=body)
        async with httpx.AsyncClient() as http:
            feed = RevocationFeedClient(Denylist(), http=http, feed_url=FEED_URL, poll_interval=1)
            with pytest.raises(ValueError):
                await feed.poll_once()
            assert feed.cursor is None and not feed.synced


async def test_the_poll_loop_survives_errors() -> None:
    deny = Denylist()
    with respx.mock() as router:
        route = router.get(FEED_URL)
        route.side_effect = [
            httpx.ConnectError("down"),
            httpx.Response(
                200,
                json={
                    "events": [
                        {
                            "id": 1,
                            "type": "sid",
                            "value": "late",
                            "not_before": None,
                            "expires_at": time.time() + 60,
                        }
                    ],
                    "cursor": "1",
                },
            ),
            httpx.Response(200, json={"events": [], "cursor": "1"}),
            httpx.Response(200, json={"events": [], "cursor": "1"}),
        ]
        async with httpx.AsyncClient() as http:
            feed = RevocationFeedClient(deny, http=http, feed_url=FEED_URL, poll_interval=0.01)
            await feed.start()
            for _ in range(100):
                if feed.synced:
                    break
                await asyncio.sleep(0.01)
            await feed.aclose()
    assert feed.synced and len(deny) == 1


async def test_a_relayed_refresh_names_the_session_and_passes_on_the_caller() -> None:
    with respx.mock() as router:
        route = router.post(TOKEN_URL).respond(json=PAIR)
        async with httpx.AsyncClient() as http:
            refresher = TransparentRefresher(http=http, token_endpoint=TOKEN_URL)
            await refresher.refresh(
                "old", "web", session_id="sid-1", client_ip="198.51.100.7", user_agent="Phone/2"
            )
        request = route.calls[0].request
        assert parse_qs(request.content.decode())["sid"] == ["sid-1"]
        assert request.headers["X-Forwarded-For"] == "198.51.100.7"
        assert request.headers["User-Agent"] == "Phone/2"


async def test_only_requests_of_one_party_share_an_exchange() -> None:
    """Two callers presenting the same refresh token are two exchanges: the auth server decides
    (a replay from another party is reuse), never the relay's cache."""
    with respx.mock() as router:
        route = router.post(TOKEN_URL).respond(json=PAIR)
        async with httpx.AsyncClient() as http:
            refresher = TransparentRefresher(http=http, token_endpoint=TOKEN_URL)
            await refresher.refresh("old", "web", session_id="s", client_ip="1.1.1.1")
            await refresher.refresh("old", "web", session_id="s", client_ip="1.1.1.1")
            await refresher.refresh("old", "web", session_id="s", client_ip="6.6.6.6")
        assert route.call_count == 2


async def test_the_feed_client_authenticates_where_the_feed_is_not_open() -> None:
    with respx.mock() as router:
        route = router.get(FEED_URL).respond(json={"events": [], "cursor": "0"})
        async with httpx.AsyncClient() as http:
            feed = RevocationFeedClient(
                Denylist(), http=http, feed_url=FEED_URL, auth=("notes-api", "s3cret")
            )
            await feed.poll_once()
        assert route.calls[0].request.headers["Authorization"].startswith("Basic ")
