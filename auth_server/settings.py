"""AuthSettings: every knob of the auth server, read from `AUTH_*` environment variables and `.env`."""

from __future__ import annotations

import base64
import logging
import secrets
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.settings import LOOPBACK_HOSTS, CommaList

log = logging.getLogger("auth_server.settings")

PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "placeholder", "dev"})


class AuthSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="AUTH_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    environment: Literal["development", "production", "test"] = "development"
    database_url: str = "sqlite+aiosqlite:///./var/auth.db"
    issuer: str = "http://127.0.0.1:8000"
    audience: str = "notes-api"
    access_token_ttl: int = Field(900, gt=0)
    refresh_token_ttl: int = Field(1_209_600, gt=0)
    refresh_reuse_grace: int = Field(10, ge=0)
    key_encryption_key: SecretStr | None = None
    key_rotation_days: int = Field(30, ge=0)
    redis_url: str | None = None
    login_failure_limit: int = Field(5, gt=0)
    login_ip_limit: int = Field(50, gt=0)
    login_failure_window: int = Field(900, gt=0)
    trusted_proxies: CommaList = []
    cors_origins: CommaList = ["http://127.0.0.1:8001", "http://localhost:8001"]
    registration_open: bool = True
    registration_ip_limit: int = Field(20, gt=0)

    # Beyond the contract's table: operational knobs with safe defaults.
    var_dir: Path = Path("var")
    jwks_max_age: int = Field(300, ge=0, description="Cache-Control max-age of the JWKS, seconds")
    key_rotation_check_interval: int = Field(
        3600, gt=0, description="seconds between schedule checks"
    )
    sweep_interval: int = Field(300, gt=0, description="seconds between purges of expired rows")
    revocation_feed_page_size: int = Field(500, gt=0)
    password_hash_time_cost: int = Field(3, ge=1)
    password_hash_memory_cost: int = Field(65536, ge=8, description="KiB")
    password_hash_parallelism: int = Field(4, ge=1)
    redis_prefix: str = "notes-auth"
    max_form_field_length: int = Field(4096, gt=0)
    log_level: str = "INFO"
    key_cache_refresh_interval: float = Field(
        2.0, gt=0, description="seconds between reloads of the signing keys from the database"
    )
    revocation_feed_settle: float = Field(
        2.0,
        ge=0,
        description="feed events this young are sent again (late commits are not skipped)",
    )
    ended_session_retention_days: int = Field(7, ge=0, description="ended sessions kept for audits")
    sweep_batch_size: int = Field(1000, gt=0)

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> AuthSettings:
        if self.environment != "production":
            return self
        problems: list[str] = []
        kek = self.key_encryption_key.get_secret_value() if self.key_encryption_key else ""
        if kek.strip().lower() in PLACEHOLDER_SECRETS or len(kek) < 32:
            problems.append("AUTH_KEY_ENCRYPTION_KEY is missing or a placeholder")
        issuer = urlsplit(self.issuer)
        if issuer.scheme != "https" and (issuer.hostname or "") not in LOOPBACK_HOSTS:
            problems.append("AUTH_ISSUER must be https:// outside loopback")
        if any(origin.strip() == "*" for origin in self.cors_origins):
            problems.append("AUTH_CORS_ORIGINS must not be open (*)")
        if problems:
            raise ValueError("refusing to start in production: " + "; ".join(problems))
        return self

    @property
    def issuer_base(self) -> str:
        return self.issuer.rstrip("/")

    def key_encryption_secret(self) -> bytes:
        """The AES-GCM key-encryption key (32 bytes derived from the configured secret).

        In development a missing secret is generated into `var/` once and reused.
        """
        from hashlib import sha256

        if self.key_encryption_key is not None and self.key_encryption_key.get_secret_value():
            raw = self.key_encryption_key.get_secret_value()
        elif self.environment == "production":  # pragma: no cover - refused by the validator
            raise RuntimeError("AUTH_KEY_ENCRYPTION_KEY is required in production")
        else:
            path = self.var_dir / "key-encryption-key"
            if path.exists():
                raw = path.read_text().strip()
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                raw = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
                path.write_text(raw + "\n")
                path.chmod(0o600)
                log.warning(
                    "AUTH_KEY_ENCRYPTION_KEY is not set: generated one into %s (development only)",
                    path,
                )
        return sha256(raw.encode()).digest()
