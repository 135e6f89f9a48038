"""What the verification library reports, as a hook the caller passes in.

The core never imports a metrics library and never writes into a global registry: each component
takes a `metrics=` argument that implements `Metrics` (a Prometheus implementation lives in
`shared.service.metrics`). Without one, nothing is recorded.
"""

from __future__ import annotations

from typing import Protocol


class Metrics(Protocol):
    def token_refused(self, reason: str) -> None:
        """An access token was refused; `reason` is a `shared.errors.REASONS` code."""

    def jwks_fetched(self, outcome: str) -> None:
        """A JWKS fetch ended: `ok`, `not_modified` or `error`."""

    def jwks_stale_served(self) -> None:
        """A fetch failed and the last good key set stayed in use."""

    def revocations_applied(self, source: str, count: int) -> None:
        """Revocation events were applied to a denylist; `source` is `feed` or `redis`."""

    def revocation_feed_failed(self) -> None:
        """A read of the revocation feed, or of its Redis channel, failed."""


class NoMetrics:
    """Records nothing."""

    def token_refused(self, reason: str) -> None:
        pass

    def jwks_fetched(self, outcome: str) -> None:
        pass

    def jwks_stale_served(self) -> None:
        pass

    def revocations_applied(self, source: str, count: int) -> None:
        pass

    def revocation_feed_failed(self) -> None:
        pass


NO_METRICS: Metrics = NoMetrics()

__all__ = ["NO_METRICS", "Metrics", "NoMetrics"]
