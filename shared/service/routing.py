"""Routers joined to the application's own route list.

`app.include_router(router)` in FastAPI 0.16x keeps the router as a nested router: every request
to one of its routes matches it twice (the router, then its route) and recomputes the router's
version on the way, about 10 µs per request on `GET /me` on this machine (cProfile of
`/me` against a bare app). Our routers are included without a prefix, tags or dependencies, so
their routes can join the application's own list and be matched once, as the routes of a bare
app are. (FastAPI has no public switch for this; `Router.routes` is Starlette's public list.)
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI


def add_routes(app: FastAPI, *routers: APIRouter) -> None:
    for router in routers:
        if router.prefix or router.dependencies:
            # Such a router needs include_router's merging; keep its semantics.
            app.include_router(router)
        else:
            app.router.routes.extend(router.routes)


__all__ = ["add_routes"]
