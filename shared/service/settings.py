"""Settings pieces both services share (pydantic-settings)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, ValidationError
from pydantic_settings import BaseSettings, NoDecode


def _split_commas(value: Any) -> Any:
    """Environment variables carry lists as `a,b,c`; JSON lists are accepted too."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


# A list[str] read from one comma-separated environment variable.
CommaList = Annotated[list[str], NoDecode, BeforeValidator(_split_commas)]

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


class ServiceSettings(BaseSettings):
    """The settings both services have alike: how `serve` runs them and what the app factory
    turns on. Each service's class adds its own and sets its own `env_prefix`."""

    log_level: str = Field("INFO", description="uvicorn's log level")
    access_log: bool = Field(
        False,
        description="uvicorn's access log (`serve --access-log` turns it on for one run); off by "
        "default: it costs about a quarter of a small endpoint's throughput, and the proxy in "
        "front logs every request anyway",
    )
    opentelemetry: bool = Field(
        False,
        description="FastAPI's native OpenTelemetry (traces, metrics, logs through the globally "
        "configured providers); off, FastAPI skips its per-request check for a provider (about "
        "5% of a small endpoint)",
    )
    graceful_shutdown_timeout: int = Field(
        25, gt=0, description="seconds in-flight requests get to finish on SIGTERM"
    )


def describe_settings_error(exc: Exception, prefix: str) -> str:
    """One line naming the environment variables that are wrong (for command-line errors)."""
    if isinstance(exc, ValidationError):
        parts = []
        for error in exc.errors():
            loc = "_".join(str(p) for p in error.get("loc", ())).upper()
            name = f"{prefix}{loc}" if loc else "settings"
            parts.append(f"{name}: {error.get('msg', 'invalid')}")
        return "; ".join(parts)
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


__all__ = ["LOOPBACK_HOSTS", "CommaList", "ServiceSettings", "describe_settings_error"]
