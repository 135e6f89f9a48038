"""Login flows: a sign-in in progress at the hosted pages, as Ory Kratos has them. A flow holds
the authorization request it serves (or none), the steps passed so far (`user_id` and `amr` once
a first factor passed and another is due), and is bound to the browser that started it. Each
page names its flow in the URL (`/login?flow=...`), so a person can reload, go back, or fix a
typo without losing where the app sent them."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Callable

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from auth_server.oauth.authorize import AuthorizationRequest
from auth_server.persistence.models import LoginFlow
from shared.service.db import utcnow

FLOW_TTL = 1800  # seconds a person has to finish signing in
MAX_FLOW_ID_LENGTH = 64


def binding_of(browser_key: str) -> str:
    return hashlib.sha256(browser_key.encode()).hexdigest()


class LoginFlows:
    def __init__(self, clock: Callable[[], dt.datetime] = utcnow) -> None:
        self._clock = clock

    async def start(
        self, db: AsyncSession, *, browser_key: str, request: AuthorizationRequest | None
    ) -> str:
        now = self._clock()
        flow_id = secrets.token_urlsafe(24)
        db.add(
            LoginFlow(
                id=flow_id,
                binding_hash=binding_of(browser_key),
                request=request.to_json() if request else None,
                created_at=now,
                expires_at=now + dt.timedelta(seconds=FLOW_TTL),
            )
        )
        await db.flush()
        return flow_id

    async def get(
        self, db: AsyncSession, flow_id: str | None, browser_key: str
    ) -> LoginFlow | None:
        """The live flow of this browser, or None (unknown, expired, or another browser's)."""
        if not flow_id or len(flow_id) > MAX_FLOW_ID_LENGTH or not browser_key:
            return None
        flow = await db.get(LoginFlow, flow_id)
        if flow is None or flow.expires_at <= self._clock():
            return None
        if not secrets.compare_digest(flow.binding_hash, binding_of(browser_key)):
            return None
        return flow

    async def finish(self, db: AsyncSession, flow_id: str) -> None:
        await db.execute(delete(LoginFlow).where(LoginFlow.id == flow_id))

    async def sweep(self, db: AsyncSession) -> None:
        await db.execute(delete(LoginFlow).where(LoginFlow.expires_at <= self._clock()))


def request_of(flow: LoginFlow) -> AuthorizationRequest | None:
    return AuthorizationRequest.from_json(flow.request) if flow.request else None


__all__ = ["FLOW_TTL", "LoginFlows", "binding_of", "request_of"]
