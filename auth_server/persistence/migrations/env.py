"""Alembic's environment: the URL comes from the caller (tests, `migrate`) or the settings."""

from auth_server.persistence.models import Base
from auth_server.settings import AuthSettings
from shared.service.migrations_env import run_env


def _default_url() -> str:
    return AuthSettings().database_url


run_env(Base.metadata, _default_url)
