"""ResourceSettings: every knob of the resource server, read from `RESOURCE_*` and `.env`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.settings import LOOPBACK_HOSTS, CommaList


class ResourceSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RESOURCE_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    environment: Literal["development", "production", "test"] = "development"
    database_url: str = "sqlite+aiosqlite:///./var/resource.db"
    auth_server_url: str = "http://127.0.0.1:8000"
    audience: str = "notes-api"
    redis_url: str | None = None
    leeway: int = Field(30, ge=0)
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
    cors_origins: CommaList = ["http://127.0.0.1:8001", "http://localhost:8001"]
    max_body_bytes: int = Field(128 * 1024, gt=0)
    redis_prefix: str = "notes-auth"
    log_level: str = "INFO"
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
    refresh_remember: float = Field(
        5, ge=0, description="seconds a finished refresh is shared in memory"
    )

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
    def issuer(self) -> str:
        return self.auth_server_url.rstrip("/")
