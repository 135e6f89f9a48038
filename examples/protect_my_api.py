"""Protect your own FastAPI API with notes-auth access tokens.

Run it next to a notes-auth auth server (`make run` starts one on 127.0.0.1:8000):

    NOTES_AUTH_ISSUER=http://127.0.0.1:8000 uvicorn examples.protect_my_api:app --port 9000

Every request is verified locally: the signing keys come from the issuer's JWKS (found through
its metadata, cached, refreshed in the background), and revocations arrive from its revocation
feed within seconds. Nothing is asked of the auth server per request.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import FastAPI, Security

from shared import AccessTokenClaims, Denylist, RemoteKeySet, RevocationFeedClient, TokenVerifier
from shared.fastapi import BearerAuth, install_bearer_handlers

ISSUER = os.environ.get("NOTES_AUTH_ISSUER", "http://127.0.0.1:8000")
AUDIENCE = os.environ.get("NOTES_AUTH_AUDIENCE", "notes-api")

keys = RemoteKeySet(ISSUER)
denylist = Denylist()
revocations = RevocationFeedClient(denylist, feed_url=f"{ISSUER}/revocations")
verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, key_source=keys, denylist=denylist)
bearer = BearerAuth(verifier, realm="my-api")


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    async with keys, revocations:  # fetch the keys and follow the feed while the app runs
        yield


app = FastAPI(title="My API", lifespan=lifespan)
install_bearer_handlers(app)  # 401 / 403 with RFC 6750 challenges, never a 500


@app.get("/things")
async def things(
    claims: Annotated[AccessTokenClaims, Security(bearer, scopes=["notes:read"])],
) -> dict[str, Any]:
    return {"owner": claims.sub, "things": []}


@app.delete("/things")
async def delete_everything(
    claims: Annotated[AccessTokenClaims, Security(bearer, scopes=["admin"])],
) -> dict[str, Any]:
    return {"deleted_by": claims.sub}
