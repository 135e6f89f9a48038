"""The settings reference (docs/reference/settings.md) is generated from the settings classes:
every setting the code reads is a row, and its meaning is the field's description. These tests
make a setting without a description, or a page without the table, fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from auth_server.settings import AuthSettings
from resource_server.settings import ResourceSettings
from scripts import docs_site

ROOT = Path(__file__).resolve().parents[2]
SETTINGS_PAGE = ROOT / "docs" / "reference" / "settings.md"

CLASSES = {"auth-server": AuthSettings, "resource-server": ResourceSettings}
FIELDS = [(service, name) for service, cls in CLASSES.items() for name in cls.model_fields]


@pytest.mark.parametrize(("service", "name"), FIELDS)
def test_every_setting_has_a_description(service: str, name: str) -> None:
    field = CLASSES[service].model_fields[name]
    assert field.description and len(field.description.split()) >= 3, (
        f"{docs_site.environment_variable(service, name)} needs a description= (it is the "
        "operators' reference: docs/reference/settings.md is generated from it)"
    )


@pytest.mark.parametrize(("service", "name"), FIELDS)
def test_every_setting_is_a_row_of_the_generated_table(service: str, name: str) -> None:
    variable = docs_site.environment_variable(service, name)
    rows = [
        row
        for row in docs_site.settings_table(service).splitlines()
        if row.startswith(f"| `{variable}` |")
    ]
    assert len(rows) == 1
    description = CLASSES[service].model_fields[name].description or ""
    assert " ".join(description.split()) in rows[0]


def test_the_settings_page_asks_for_both_tables() -> None:
    page = SETTINGS_PAGE.read_text()
    for service in CLASSES:
        assert f"<!-- generated: settings {service} -->" in page


def test_computed_defaults_are_described_as_an_operator_reads_them() -> None:
    table = docs_site.settings_table("auth-server")
    assert "| `AUTH_PASSWORD_HASH_CONCURRENCY` | one per core |" in table
    assert "| `AUTH_KEY_ENCRYPTION_KEY` | generated into `var/` in development |" in table
    assert "| `AUTH_TRUSTED_PROXIES` | empty |" in table
    assert "| `AUTH_REGISTRATION_OPEN` | `true` |" in table
    assert "| `RESOURCE_REDIS_URL` | unset |" in docs_site.settings_table("resource-server")


def test_a_setting_without_a_description_stops_the_build(monkeypatch: pytest.MonkeyPatch) -> None:
    class Undocumented(AuthSettings):
        undocumented_knob: int = 3

    monkeypatch.setattr(docs_site, "settings_class", lambda service: Undocumented)
    with pytest.raises(docs_site.DocsError, match="AUTH_UNDOCUMENTED_KNOB has no description"):
        docs_site.settings_table("auth-server")
