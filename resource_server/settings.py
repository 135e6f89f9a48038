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

    # Each description is the operators' reference: the settings tables of the documentation
    # site are generated from them (docs/reference/settings.md, scripts/docs_site.py).
    environment: Literal["development", "production", "test"] = Field(
        "development",
        description="`production` refuses an `http://` auth server other than loopback (its keys "
        "could be swapped in transit) and open CORS",
    )
    database_url: str = Field(
        "sqlite+aiosqlite:///./var/resource.db",
        description="SQLAlchemy async URL; `postgresql+asyncpg://...` in production",
    )
    auth_server_url: str = Field(
        "http://127.0.0.1:8000",
        description="the issuer; everything else is found through its metadata",
    )
    audience: str = Field("notes-api", description="tokens for another audience are rejected")
    redis_url: str | None = Field(
        None,
        description="revocation events arrive by Redis pub/sub (the feed is still read as the "
        "source of truth)",
    )
    # A confidential client (scope revocations:read) for reading the auth server's revocation
    # feed where it is not open (AUTH_REVOCATION_FEED_AUTH=client, its production default).
    client_id: str | None = Field(
        None,
        description="a confidential client of the auth server with the `revocations:read` "
        "scope, to read the revocation feed where it is not open (with `RESOURCE_CLIENT_SECRET`)",
    )
    client_secret: SecretStr | None = Field(None, description="the secret of `RESOURCE_CLIENT_ID`")
    leeway: int = Field(
        30,
        ge=0,
        le=MAX_LEEWAY,
        description="seconds of clock skew allowed on `exp`, `nbf`, `iat`; at most 60 (the auth "
        "server's `AUTH_CLOCK_SKEW_MARGIN`: revocation events outlive a token by that much; each "
        "entry is also kept this leeway past its event)",
    )
    jwks_min_refresh: float = Field(
        10, ge=0, description="least seconds between two JWKS fetches caused by unknown `kid`s"
    )
    revocation_poll_interval: float = Field(
        2, gt=0, description="seconds between reads of the revocation feed"
    )
    transparent_refresh: bool = Field(
        True, description="refresh expired tokens sent with a `Refresh-Token` header"
    )

    # Beyond the contract's table.
    algorithms: CommaList = Field(
        ["RS256"],
        description="the signature algorithms accepted (comma-separated; `none` and HMAC are "
        "refused)",
    )
    jwks_cache_floor: float = Field(60, ge=0, description="least seconds a fetched JWKS is kept")
    jwks_fetch_timeout: float = Field(5, gt=0, description="seconds a JWKS fetch may take")
    jwks_max_bytes: int = Field(256 * 1024, gt=0, description="a larger JWKS is refused")
    var_dir: Path = Field(
        Path("var"),
        description="where the last good JWKS and the revocation state are kept on disk",
    )
    token_cache_size: int = Field(
        10_000, gt=0, description="verified tokens remembered until their `exp`"
    )
    denylist_max_entries: int = Field(
        100_000,
        gt=0,
        description="revocation entries held; when full, the soonest-expiring are replaced by a "
        "floor that refuses every token issued before them (refuse rather than forget)",
    )
    jwks_max_staleness: float = Field(
        86_400,
        gt=0,
        description="seconds a key set may be served after the last successful fetch while the "
        "auth server can't be reached; past it, tokens are refused (401) and `/readyz` is 503",
    )
    # Pages on other origins that call this API from script. The notes page is served by this
    # server itself (same origin), so none by default, and no CORS middleware at all then.
    cors_origins: CommaList = Field(
        [],
        description="comma-separated origins of pages elsewhere that call the API from script "
        "(the notes page is same-origin and needs none); empty adds no CORS layer at all",
    )
    # Addresses or CIDR ranges whose X-Forwarded-For is believed: the caller's address is passed
    # on to the auth server when a transparent refresh is relayed.
    trusted_proxies: CommaList = Field(
        [],
        description="addresses or CIDR ranges whose `X-Forwarded-For` is believed; the caller's "
        "address is passed on to the auth server when a transparent refresh is relayed",
    )
    max_body_bytes: int = Field(128 * 1024, gt=0, description="larger request bodies get 413")
    redis_prefix: str = Field("notes-auth", description="must match `AUTH_REDIS_PREFIX`")
    # log_level, access_log, opentelemetry, graceful_shutdown_timeout: ServiceSettings.
    jwks_retry_interval: float = Field(
        5, gt=0, description="seconds between JWKS retries while the auth server fails"
    )
    revocation_poll_interval_with_redis: float = Field(
        30,
        gt=0,
        description="seconds between feed reads when Redis delivers the events (the feed stays "
        "the source of truth)",
    )
    refresh_retry_after: int = Field(
        5,
        gt=0,
        description="`Retry-After` of the 503 when a transparent refresh can't reach the auth "
        "server",
    )
    retry_after: int = Field(
        5, gt=0, description="`Retry-After` of a 503 when the database is unreachable"
    )
    refresh_remember: float = Field(
        5,
        ge=0,
        description="seconds a finished transparent refresh is shared with requests carrying the "
        "same refresh token",
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
