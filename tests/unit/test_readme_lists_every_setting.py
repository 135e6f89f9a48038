"""The README's settings table is the operators' reference: every setting must be in it."""

from __future__ import annotations

from pathlib import Path

import pytest

from auth_server.settings import AuthSettings
from resource_server.settings import ResourceSettings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


@pytest.mark.parametrize(
    "variable",
    [f"AUTH_{name.upper()}" for name in AuthSettings.model_fields]
    + [f"RESOURCE_{name.upper()}" for name in ResourceSettings.model_fields],
)
def test_every_setting_is_documented(variable: str) -> None:
    if variable.startswith("AUTH_PASSWORD_HASH_"):
        # One row documents the three Argon2 parameters together.
        assert "`AUTH_PASSWORD_HASH_TIME_COST` / `_MEMORY_COST` / `_PARALLELISM`" in README
    else:
        assert f"`{variable}`" in README
