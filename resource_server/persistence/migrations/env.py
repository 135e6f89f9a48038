from resource_server.persistence.models import Base
from shared.migrations_env import run_env


def _default_url() -> str:
    from resource_server.settings import ResourceSettings

    return ResourceSettings().database_url


run_env(Base.metadata, _default_url)
