from auth_server.persistence.models import Base
from shared.migrations_env import run_env


def _default_url() -> str:
    from auth_server.settings import AuthSettings

    return AuthSettings().database_url


run_env(Base.metadata, _default_url)
