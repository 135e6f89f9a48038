"""Both services in-process for schemathesis (see harness.py); built once per test session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fuzz.harness import (
    FuzzTarget,
    Templates,
    build_auth_target,
    build_resource_target,
    running_lifespans,
)
from tests.fuzz.settings import fuzz_config

# The bounded run of `make test`: a few examples per operation and phase, seeded; `make fuzz`
# (scripts/fuzz.py) is the long one.
EXAMPLES = 10
SEED = 9


@pytest.fixture(scope="session")
def _fuzz_lifespans() -> Iterator[None]:
    with running_lifespans():
        yield


@pytest.fixture(scope="session")
def _fuzz_templates(tmp_path_factory: pytest.TempPathFactory) -> Templates:
    return Templates.build(tmp_path_factory.mktemp("fuzz-templates"))


@pytest.fixture(scope="session")
def auth_target(
    _fuzz_lifespans: None, _fuzz_templates: Templates, tmp_path_factory: pytest.TempPathFactory
) -> FuzzTarget:
    config = fuzz_config(examples=EXAMPLES, seed=SEED)
    return build_auth_target(_fuzz_templates, tmp_path_factory.mktemp("fuzz-auth"), config)


@pytest.fixture(scope="session")
def resource_target(
    _fuzz_lifespans: None, _fuzz_templates: Templates, tmp_path_factory: pytest.TempPathFactory
) -> FuzzTarget:
    config = fuzz_config(examples=EXAMPLES, seed=SEED)
    return build_resource_target(_fuzz_templates, tmp_path_factory.mktemp("fuzz-resource"), config)
