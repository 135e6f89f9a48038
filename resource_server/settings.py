"""ResourceSettings: every knob of the resource server, read from `RESOURCE_*` and `.env`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from shared.forwarding import Network, parse_networks
from shared.service.settings import LOOPBACK_HOSTS, CommaList, ServiceSettings

# Revocation events outlive the tokens they affect by the auth server's AUTH_CLOCK_SKEW_MARGIN
# (60 s by default); a verifier allowing more skew than that could accept a revoked token whose
# event is gone. The resource server also keeps each entry its own leeway past the event.
MAX_LEEWAY = 60


class ResourceSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="RESOURCE_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    environment: Literal["development", "production", "test"] = "development"
    database_url: str = "sqlite+aiosqlite:///./var/resource.db"
    auth_server_url: str = "http://127.0.0.1:8000"
    audience: str = "notes-api"
    redis_url: str | None = None
    # A confidential client (scope revocations:read) for reading the auth server's revocation
    # feed where it is not open (AUTH_REVOCATION_FEED_AUTH=client, its production default).
    client_id: str | None = None
    client_secret: SecretStr | None = None
    leeway: int = Field(
        30,
        ge=0,
        le=MAX_LEEWAY,
        description="clock skew allowed on exp, nbf and iat; at most the auth server's "
        "AUTH_CLOCK_SKEW_MARGIN, the time revocation events outlive a token",
    )
    jwks_min_refresh: float = Field(10, ge=0)
    revocation_poll_interval: float = Field(2, gt=0)
    transparent_refresh: bool = True

    # Beyond the contract's table.
    algorithms: CommaList = ["RS256"]
    jwks_cache_floor: float = Field(60, ge=0, description="least seconds a fetched JWKS is kept")
    jwks_fetch_timeout: float = Field(5, gt=0)
    jwks_max_bytes: int = Field(256 * 1024, gt=0)
    var_dir: Path = Path("var")
    token_cache_size: int = Field(10_000, gt=0)
    denylist_max_entries: int = Field(100_000, gt=0)
    jwks_max_staleness: float = Field(
        86_400,
        gt=0,
        description="seconds a key set may be served after the last successful fetch",
    )
    # Pages on other origins that call this API from script. The notes page is served by this
    # server itself (same origin), so none by default, and no CORS middleware at all then.
    cors_origins: CommaList = []
    # Addresses or CIDR ranges whose X-Forwarded-For is believed: the caller's address is passed
    # on to the auth server when a transparent refresh is relayed.
    trusted_proxies: CommaList = []
    max_body_bytes: int = Field(128 * 1024, gt=0)
    redis_prefix: str = "notes-auth"
    # log_level, access_log, opentelemetry, graceful_shutdown_timeout: ServiceSettings.
    jwks_retry_interval: float = Field(
        5, gt=0, description="seconds between JWKS retries while failing"
    )
    revocation_poll_interval_with_redis: float = Field(
        30,
        gt=0,
        description="feed reads when Redis delivers events (the feed stays the source of truth)",
    )
    refresh_retry_after: int = Field(
        5, gt=0, description="Retry-After when the auth server is unreachable"
    )
    retry_after: int = Field(5, gt=0, description="Retry-After of a 503 when the database is down")
    refresh_remember: float = Field(
        5, ge=0, description="seconds a finished refresh is shared in memory"
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        parse_networks(value)
        return value

    @property
    def trusted_networks(self) -> tuple[Network, ...]:
        return parse_networks(tuple(self.trusted_proxies))

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> ResourceSettings:
        if self.environment != "production":
            return self
        problems = []
        url = urlsplit(self.auth_server_url)
        if url.scheme != "https" and (url.hostname or "") not in LOOPBACK_HOSTS:
            # Keys fetched over plain HTTP could be swapped on the way: fail closed.
            problems.append("RESOURCE_AUTH_SERVER_URL must be https:// outside loopback")
        if any(origin.strip() == "*" for origin in self.cors_origins):
            problems.append("RESOURCE_CORS_ORIGINS must not be open (*)")
        if problems:
            raise ValueError("refusing to start in production: " + "; ".join(problems))
        return self

    @property
    def feed_credentials(self) -> tuple[str, str] | None:
        if self.client_id and self.client_secret is not None:
            return self.client_id, self.client_secret.get_secret_value()
        return None

    @property
    def issuer(self) -> str:
        return self.auth_server_url.rstrip("/")
