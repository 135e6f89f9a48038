"""AUTH_ENVIRONMENT: production refuses unsafe settings; development generates what is missing."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from auth_server.settings import AuthSettings

STRONG = "a-real-random-secret-of-more-than-32-characters"


def _settings(**values: object) -> AuthSettings:
    return AuthSettings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"key_encryption_key": None}, "AUTH_KEY_ENCRYPTION_KEY"),
        ({"key_encryption_key": "changeme"}, "AUTH_KEY_ENCRYPTION_KEY"),
        ({"key_encryption_key": "short"}, "AUTH_KEY_ENCRYPTION_KEY"),
        ({"issuer": "http://auth.example.com"}, "AUTH_ISSUER"),
        ({"cors_origins": "*"}, "AUTH_CORS_ORIGINS"),
    ],
)
def test_production_refuses_unsafe_settings(values: dict[str, object], complaint: str) -> None:
    base: dict[str, object] = {
        "environment": "production",
        "key_encryption_key": STRONG,
        "issuer": "https://auth.example.com",
        "cors_origins": "https://notes.example.com",
    }
    with pytest.raises(ValidationError, match=complaint):
        _settings(**(base | values))


def test_production_accepts_safe_settings_and_loopback_http() -> None:
    settings = _settings(
        environment="production", key_encryption_key=STRONG, issuer="http://127.0.0.1:8000"
    )
    assert settings.issuer_base == "http://127.0.0.1:8000"


def test_development_generates_the_key_encryption_key_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(var_dir=tmp_path)
    first = settings.key_encryption_secret()
    path = tmp_path / "key-encryption-key"
    assert path.exists() and oct(path.stat().st_mode & 0o777) == "0o600"
    assert "generated" in caplog.text
    assert _settings(var_dir=tmp_path).key_encryption_secret() == first
    assert len(first) == 32


def test_comma_separated_lists_are_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AUTH_CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("AUTH_TRUSTED_PROXIES", "10.0.0.1")
    settings = AuthSettings(_env_file=None)  # type: ignore[call-arg]
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.trusted_proxies == ["10.0.0.1"]
