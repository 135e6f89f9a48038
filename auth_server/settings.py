"""AuthSettings: every knob of the auth server, read from `AUTH_*` environment variables and `.env`."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import logging
import os
import re
import secrets
import time
from hashlib import sha256
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from shared.forwarding import Network, parse_networks
from shared.service.settings import LOOPBACK_HOSTS, CommaList, ServiceSettings

log = logging.getLogger("auth_server.settings")

# Logins that may wait for a hashing slot, per core. A login then waits at most about 16 hash
# times (2-4 s under full load): a storm of a few dozen concurrent logins per worker is queued,
# and a refusal (503) is kept for more than that. Refusing earlier costs more than it saves:
# clients that ignore Retry-After turn every refusal into another request at once, and a loop of
# cheap refusals keeps the event loop busier than the same clients waiting in the queue
# (docs/benchmarks.md, scenario 4: /healthz p99 56-110 ms with 8 per worker, under 10 ms
# with 32).
HASH_QUEUE_PER_SLOT = 16

PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "placeholder", "dev"})


class AuthSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="AUTH_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # Each description is the operators' reference: the settings tables of the documentation
    # site are generated from them (docs/reference/settings.md, scripts/docs_site.py).
    environment: Literal["development", "production", "test"] = Field(
        "development",
        description="`production` refuses a missing or placeholder secret, an `http://` issuer "
        "other than loopback, or open CORS; `development` generates the key-encryption secret "
        "into `var/` and says so",
    )
    database_url: str = Field(
        "sqlite+aiosqlite:///./var/auth.db",
        description="SQLAlchemy async URL; `postgresql+asyncpg://...` in production",
    )
    issuer: str = Field(
        "http://127.0.0.1:8000", description="the `iss` claim and the base of every metadata URL"
    )
    audience: str = Field("notes-api", description="the `aud` of access tokens")
    access_token_ttl: int = Field(900, gt=0, description="seconds an access token lives")
    refresh_token_ttl: int = Field(
        1_209_600, gt=0, description="seconds: the absolute lifetime of a session"
    )
    refresh_reuse_grace: int = Field(
        10,
        ge=0,
        description="seconds during which the just-rotated refresh token returns the same pair "
        "again, to the same client, address and user agent",
    )
    key_encryption_key: SecretStr | None = Field(
        None,
        description="encrypts private signing keys at rest (AES-GCM); at least 32 characters, "
        "required in production",
        json_schema_extra={"docs_default": "generated into `var/` in development"},
    )
    key_rotation_days: int = Field(
        30, ge=0, description="automatic rotation period of the signing key; `0` turns it off"
    )
    redis_url: str | None = Field(
        None,
        description="rate limits and revocation events shared across replicas through Redis",
    )
    login_failure_limit: int = Field(
        5,
        gt=0,
        description="failed logins per login name (the username or the email, as typed, in "
        "canonical form) and client address per window, then 429 with `Retry-After`; counted "
        "before the password is checked",
    )
    login_ip_limit: int = Field(
        50,
        gt=0,
        description="failed logins per client address (IPv6: per /64) per window across "
        "accounts, then 429",
    )
    login_failure_window: int = Field(
        900, gt=0, description="seconds: the window of the login limits"
    )
    login_account_limit: int = Field(
        20,
        gt=0,
        description="failed logins of one account from all addresses together per window, then "
        "429 for that account (the security model says how this trades lockout abuse against "
        "guessing; `auth-server users unlock` lifts it)",
    )
    trusted_proxies: CommaList = Field(
        [],
        description="addresses or CIDR ranges (`10.0.0.0/8`, `fd00::/8`) whose "
        "`X-Forwarded-For` is believed; list the resource servers here too, so that a relayed "
        "transparent refresh counts as its end client",
    )
    cors_origins: CommaList = Field(
        ["http://127.0.0.1:8001", "http://localhost:8001"],
        description="comma-separated origins allowed credentialed CORS; the web page's origin "
        "must be listed (its client is refused from any other)",
    )
    registration_open: bool = Field(
        True, description="whether `POST /users` accepts anonymous sign-ups"
    )
    registration_ip_limit: int = Field(
        20, gt=0, description="sign-ups per client address per hour, then 429"
    )
    session_rate_limit: int = Field(
        60,
        gt=0,
        description="refreshes and revocations by refresh token per session per minute, then "
        "429 with `Retry-After` (revoking an access token never counts against its session)",
    )
    client_rate_limit: int = Field(
        1200,
        gt=0,
        description="refresh and revoke requests per client and client address (IPv6: per /64) "
        "per minute, then 429; revoking a token already revoked or expired counts nothing",
    )
    # Second factors and passkeys (contract §8.5; docs/security/factors.md).
    webauthn_rp_id: str | None = Field(
        None,
        description="the WebAuthn relying party ID: a domain name, never an IP address "
        "(default: the issuer's host when it is a name, else `localhost`)",
    )
    webauthn_origins: CommaList = Field(
        [],
        description="origins a passkey ceremony may come from (default: the issuer's origin, on "
        "`localhost` when the issuer's host is an address); each on the RP ID or under it",
    )
    webauthn_rp_name: str = Field(
        "notes-auth",
        min_length=1,
        max_length=64,
        description="the name authenticators show for passkeys, and the issuer in TOTP apps",
    )
    webauthn_challenge_ttl: int = Field(
        300, gt=0, description="seconds a passkey ceremony's challenge stays usable (once)"
    )
    reauth_max_age: int = Field(
        300,
        gt=0,
        description="seconds since sign-in within which factors may be added or removed",
    )
    factor_failure_limit: int = Field(
        5, gt=0, description="wrong second-factor codes per account per login window, then 429"
    )
    factor_ip_limit: int = Field(
        50,
        gt=0,
        description="wrong second-factor codes from one client address across accounts per "
        "login window, then 429",
    )

    # Beyond the contract's table: operational knobs with safe defaults.
    var_dir: Path = Field(Path("var"), description="where development secrets are generated")
    jwks_max_age: int = Field(
        300,
        ge=0,
        description="`Cache-Control: max-age` of the JWKS, seconds; a next key made by a rotation "
        "must be published this long before `keys rotate` may promote it (the first next key, "
        "made with the first active key, may be promoted at once)",
    )
    key_rotation_check_interval: int = Field(
        3600, gt=0, description="seconds between checks of the rotation schedule"
    )
    sweep_interval: int = Field(
        300,
        gt=0,
        description="seconds between purges of expired sessions, tokens and feed entries",
    )
    revocation_feed_page_size: int = Field(
        500, gt=0, description="events per page of `GET /revocations`"
    )
    password_hash_time_cost: int = Field(
        3,
        ge=1,
        description="Argon2id passes; hashes are upgraded at login when a parameter changes",
    )
    password_hash_memory_cost: int = Field(65536, ge=8, description="Argon2id memory, KiB")
    password_hash_parallelism: int = Field(4, ge=1, description="Argon2id lanes (threads per hash)")
    password_hash_concurrency: int = Field(
        default_factory=lambda: os.cpu_count() or 2,
        ge=1,
        description="hashes that run at once, in worker threads of lower CPU priority "
        "(nice +10), so that a login storm does not slow every other request",
        json_schema_extra={"docs_default": "one per core"},
    )
    password_hash_queue: int = Field(
        default_factory=lambda: HASH_QUEUE_PER_SLOT * (os.cpu_count() or 2),
        ge=0,
        description="hashes that may wait for a slot (a login then waits at most about 16 hash "
        "times); past that, logins and sign-ups get 503 with `Retry-After` at once",
        json_schema_extra={"docs_default": f"{HASH_QUEUE_PER_SLOT} per core"},
    )
    redis_prefix: str = Field("notes-auth", description="prefix of Redis keys and channels")
    max_form_field_length: int = Field(
        4096, gt=0, description="longer OAuth form fields are `invalid_request`"
    )
    max_body_bytes: int = Field(
        65_536,
        gt=0,
        description="larger request bodies get 413 (problem+json), decided before anything "
        "parses them",
    )
    revocation_feed_auth: Literal["open", "client"] | None = Field(
        None,
        description="who may read `GET /revocations`: anyone (`open`), or only confidential "
        "clients holding the `revocations:read` scope, by HTTP Basic (`client`)",
        json_schema_extra={"docs_default": "`open` in development, `client` in production"},
    )
    audit_retention_days: int = Field(
        90,
        gt=0,
        description="audit events older than this are swept (routine refreshes are one counted "
        "row per client and server process a minute: docs/guides/operate.md)",
    )
    # log_level, access_log, opentelemetry, graceful_shutdown_timeout: ServiceSettings.
    key_cache_refresh_interval: float = Field(
        2.0,
        gt=0,
        description="seconds between reloads of the signing keys (a rotation by another replica "
        "or the command line is seen this fast)",
    )
    revocation_feed_settle: float = Field(
        2.0,
        ge=0,
        description="feed events younger than this are sent again, so a late commit is never "
        "skipped",
    )
    ended_session_retention_days: int = Field(
        7, ge=0, description="ended sessions are kept this long (audits), then swept"
    )
    sweep_batch_size: int = Field(1000, gt=0, description="rows deleted per sweeper transaction")
    clock_skew_margin: int = Field(
        60,
        ge=0,
        description="seconds that revocation events and retiring keys outlive the last token they "
        "affect: at least the largest leeway any verifier allows",
    )
    leeway: int = Field(
        5,
        ge=0,
        description="clock skew the auth server allows when it verifies its own tokens "
        "(`/users/me`, `/sessions`, introspection)",
    )
    retry_after: int = Field(
        5,
        gt=0,
        description="`Retry-After` of a 503 (the database or the rate-limit store unreachable)",
    )

    @field_validator("webauthn_rp_id")
    @classmethod
    def _rp_id(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return relying_party_id(value)

    @model_validator(mode="after")
    def _webauthn_origins(self) -> AuthSettings:
        for origin in self.webauthn_origins:
            check_webauthn_origin(origin, self.rp_id)
        return self

    @property
    def rp_id(self) -> str:
        """WebAuthn's relying party ID (contract §8.5): AUTH_WEBAUTHN_RP_ID, else the issuer's
        host when it is a name, else `localhost` (WebAuthn L3 §5.1.3: an RP ID is a valid
        domain string; an IP address can't be one)."""
        if self.webauthn_rp_id:
            return self.webauthn_rp_id
        host = (urlsplit(self.issuer).hostname or "").lower()
        if not host or _is_ip_address(host):
            return "localhost"
        return host

    @property
    def webauthn_expected_origins(self) -> list[str]:
        """The origins a ceremony's clientDataJSON may name (WebAuthn L3 §7.1 step 9): the
        configured ones, else the issuer's own origin, moved onto `localhost` when the issuer's
        host is an address (the hosted pages must then be opened on `localhost`)."""
        if self.webauthn_origins:
            return [origin.rstrip("/") for origin in self.webauthn_origins]
        issuer = urlsplit(self.issuer)
        host = (issuer.hostname or "").lower()
        if not host or _is_ip_address(host):
            host = "localhost"
        port = f":{issuer.port}" if issuer.port else ""
        return [f"{issuer.scheme}://{host}{port}"]

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        parse_networks(value)  # ValueError names the entry that is neither address nor range
        return value

    @property
    def trusted_networks(self) -> tuple[Network, ...]:
        return parse_networks(tuple(self.trusted_proxies))

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
    def feed_requires_client(self) -> bool:
        if self.revocation_feed_auth is None:
            return self.environment == "production"
        return self.revocation_feed_auth == "client"

    @property
    def issuer_base(self) -> str:
        return self.issuer.rstrip("/")

    def key_encryption_secret(self) -> bytes:
        """The AES-GCM key-encryption key (32 bytes derived from the configured secret).

        In development a missing secret is generated into `var/` once and reused.
        """
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
                # Created 0600 from the start (never readable by others, not even for a moment),
                # and only if absent: two processes starting at once can't overwrite each other.
                try:
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                except FileExistsError:
                    return sha256(_read_when_written(path).encode()).digest()
                with os.fdopen(fd, "w") as handle:
                    handle.write(raw + "\n")
                log.warning(
                    "AUTH_KEY_ENCRYPTION_KEY is not set: generated one into %s (development only)",
                    path,
                )
        return sha256(raw.encode()).digest()


def _is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def relying_party_id(value: str) -> str:
    """A WebAuthn RP ID as configured: a lower-case domain name (no scheme, port or path),
    never an IP address."""
    name = value.strip().lower().rstrip(".")
    if _is_ip_address(name):
        raise ValueError("a WebAuthn RP ID must be a domain name, not an IP address")
    if len(name) > 253 or not all(_LABEL.match(label) for label in name.split(".")):
        raise ValueError(f"{value!r} is not a domain name")
    return name


def check_webauthn_origin(origin: str, rp_id: str) -> None:
    """WebAuthn L3 §5.1.3 and §13.4.9: an origin's host must be the RP ID or a subdomain of it,
    and the origin secure (https, or http on localhost)."""
    parts = urlsplit(origin.strip())
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("https", "http") or not host or parts.path not in ("", "/"):
        raise ValueError(f"AUTH_WEBAUTHN_ORIGINS: {origin!r} is not an origin")
    if host != rp_id and not host.endswith("." + rp_id):
        raise ValueError(f"AUTH_WEBAUTHN_ORIGINS: {origin!r} is not on the RP ID {rp_id!r}")
    if parts.scheme == "http" and host != "localhost" and not host.endswith(".localhost"):
        raise ValueError(f"AUTH_WEBAUTHN_ORIGINS: {origin!r} must be https outside localhost")


def _read_when_written(path: Path, attempts: int = 50) -> str:
    """Another process created the file a moment ago: wait for its content."""
    for _ in range(attempts):
        text = path.read_text().strip()
        if text:
            return text
        time.sleep(0.02)
    raise RuntimeError(f"{path} stays empty")


def accepted_until(settings: AuthSettings, expires_at: dt.datetime) -> dt.datetime:
    """The latest moment a verifier may still accept a token that expires at `expires_at`:
    verifiers allow clock skew, so this is its expiry plus the clock-skew margin."""
    return expires_at + dt.timedelta(seconds=settings.clock_skew_margin)


def token_horizon(settings: AuthSettings, now: dt.datetime) -> dt.datetime:
    """The latest moment at which an access token issued up to `now` can still be accepted.
    A retiring key stays published, and a revocation event stays in the feed, until then."""
    return accepted_until(settings, now + dt.timedelta(seconds=settings.access_token_ttl))
