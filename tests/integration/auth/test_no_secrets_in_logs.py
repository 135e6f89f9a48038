"""No password, token or secret ever reaches a log line, whatever the outcome of the request."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from tests.integration.auth.conftest import PASSWORD, login, register


async def test_logs_hold_no_secrets_through_a_whole_session(
    auth_client: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
    confidential_client: tuple[str, str],
) -> None:
    caplog.set_level(logging.DEBUG)
    user = await register(auth_client)
    tokens = (await login(auth_client, user["username"])).json()
    await login(auth_client, user["username"], password="a wrong password 77")
    rotated = (
        await auth_client.post(
            "/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": tokens["refresh_token"],
                "client_id": "web",
            },
        )
    ).json()
    await auth_client.post(
        "/introspect", data={"token": rotated["access_token"]}, auth=confidential_client
    )
    await auth_client.post("/revoke", data={"token": rotated["refresh_token"], "client_id": "web"})
    await auth_client.post(
        "/token",
        data={"grant_type": "client_credentials"},
        auth=(confidential_client[0], "bad-secret"),
    )
    secrets: list[Any] = [
        PASSWORD,
        "a wrong password 77",
        tokens["access_token"],
        tokens["refresh_token"],
        rotated["access_token"],
        rotated["refresh_token"],
        confidential_client[1],
        "bad-secret",
    ]
    assert caplog.records, "the flow logged nothing at all: the check would prove nothing"
    for secret in secrets:
        assert secret not in caplog.text
