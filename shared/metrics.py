"""Prometheus metrics shared by both services.

Metrics live in the process's default registry, created once per name: tests build many apps in
one process, and prometheus-client refuses to register a name twice.
"""

from __future__ import annotations

from fastapi import FastAPI
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    generate_latest,
)
from starlette.requests import Request
from starlette.responses import Response


def counter(name: str, documentation: str, labelnames: tuple[str, ...] = ()) -> Counter:
    """The counter of that name, created on first use."""
    # prometheus-client has no public look-up by name; a Counter registers as `<name>_total`.
    existing = REGISTRY._names_to_collectors.get(name + "_total")
    if existing is not None:
        assert isinstance(existing, Counter), name
        return existing
    return Counter(name, documentation, labelnames)


def verification_failures() -> Counter:
    return counter("token_verification_failures", "Access tokens refused, by reason", ("reason",))


def jwks_fetches() -> Counter:
    return counter("jwks_fetches", "JWKS fetches by outcome", ("outcome",))


def jwks_stale_served() -> Counter:
    return counter(
        "jwks_stale_served", "Times the last good key set was used because a fetch failed"
    )


def revocation_events() -> Counter:
    return counter("revocation_events_applied", "Revocation events applied, by source", ("source",))


def revocation_feed_errors() -> Counter:
    return counter("revocation_feed_errors", "Failed reads of the revocation feed or Redis channel")


def install_metrics_route(app: FastAPI, path: str = "/metrics") -> None:
    """GET /metrics in the Prometheus text format."""

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    app.add_route(path, metrics, methods=["GET"], include_in_schema=False)


__all__ = [
    "counter",
    "install_metrics_route",
    "jwks_fetches",
    "jwks_stale_served",
    "revocation_events",
    "revocation_feed_errors",
    "verification_failures",
]
