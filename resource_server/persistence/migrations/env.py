"""Alembic's environment: the URL comes from the caller (tests, `migrate`) or the settings."""

from resource_server.persistence.models import Base
from resource_server.settings import ResourceSettings
from shared.service.migrations_env import run_env


def _default_url() -> str:
    return ResourceSettings().database_url


run_env(Base.metadata, _default_url)
