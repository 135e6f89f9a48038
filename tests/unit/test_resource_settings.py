"""RESOURCE_ENVIRONMENT=production refuses settings that would let keys be swapped in transit."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from resource_server.settings import ResourceSettings


def _settings(**values: object) -> ResourceSettings:
    return ResourceSettings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"auth_server_url": "http://auth.example.com"}, "RESOURCE_AUTH_SERVER_URL"),
        ({"cors_origins": "*"}, "RESOURCE_CORS_ORIGINS"),
    ],
)
def test_production_refuses_unsafe_settings(values: dict[str, object], complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        _settings(
            environment="production", **({"auth_server_url": "https://auth.example.com"} | values)
        )


def test_production_accepts_https_and_loopback() -> None:
    assert (
        _settings(environment="production", auth_server_url="https://auth.example.com/").issuer
        == "https://auth.example.com"
    )
    assert (
        _settings(environment="production", auth_server_url="http://127.0.0.1:8000").issuer
        == "http://127.0.0.1:8000"
    )
    assert (
        _settings(auth_server_url="http://auth.internal").issuer == "http://auth.internal"
    )  # development
