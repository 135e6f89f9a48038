"""Consents (OIDC Core §3.1.2.4): what a person allowed a client that is not first-party,
remembered per user, client and scopes. A request for scopes already allowed needs no page; a
request for more asks again, and the answer adds to what is remembered."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from auth_server.persistence.models import Consent
from shared.service.db import utcnow


async def has_consent(db: AsyncSession, user_id: str, client_id: str, scope: str) -> bool:
    consent = await db.get(Consent, (user_id, client_id), populate_existing=True)
    return consent is not None and set(scope.split()) <= set(consent.scopes.split())


async def remember_consent(db: AsyncSession, user_id: str, client_id: str, scope: str) -> None:
    now = utcnow()
    consent = await db.get(Consent, (user_id, client_id))
    if consent is not None:
        consent.scopes = " ".join(sorted(set(consent.scopes.split()) | set(scope.split())))
        consent.updated_at = now
        return
    try:
        async with db.begin_nested():
            db.add(
                Consent(
                    user_id=user_id,
                    client_id=client_id,
                    scopes=" ".join(sorted(set(scope.split()))),
                    created_at=now,
                    updated_at=now,
                )
            )
    except IntegrityError:  # given meanwhile in another tab: add to that one
        await remember_consent(db, user_id, client_id, scope)


__all__ = ["has_consent", "remember_consent"]
