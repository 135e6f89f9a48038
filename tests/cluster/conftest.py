"""Fixtures of the cluster test: the topology (tests/cluster/topology.py) and the background load
(tests/cluster/load.py), one of each for the whole module, and the report printed at the end.

The cluster test runs only when TEST_CLUSTER=1 (CI and .ci/run set it). It needs nginx, the
PostgreSQL server binaries and redis-server on the machine; with TEST_CLUSTER=1 a missing one is
an error, not a skip, so CI can't go green without running it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.load import Load, Report
from tests.cluster.topology import Cluster, MissingTool, check_tools

ENABLED = os.environ.get("TEST_CLUSTER") == "1"
SKIP_REASON = (
    "the cluster test runs only with TEST_CLUSTER=1 (CI and .ci/run set it): it starts its own "
    "PostgreSQL, Redis, nginx and four replicas, and breaks them"
)
REPORT_KEY = pytest.StashKey[list[Report]]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "cluster: starts the scale-out topology as processes and injects faults"
    )
    config.stash[REPORT_KEY] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if ENABLED:
        return
    skip = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        if item.get_closest_marker("cluster") is not None:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # type: ignore[no-untyped-def]
    reports = config.stash.get(REPORT_KEY, [])
    if not reports:
        return
    terminalreporter.section("cluster report (issue 12)")
    for report in reports:
        terminalreporter.write_line("- " + report.line())
        for key, value in report.extra.items():
            terminalreporter.write_line(f"    {key}: {value}")
    target = os.environ.get("CLUSTER_REPORT")
    if target:
        lines = [
            "- " + r.line() + "".join(f"\n    - {k}: {v}" for k, v in r.extra.items())
            for r in reports
        ]
        Path(target).write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def cluster_report(request: pytest.FixtureRequest) -> list[Report]:
    return request.config.stash[REPORT_KEY]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    try:
        check_tools()
    except MissingTool as exc:
        pytest.fail(f"TEST_CLUSTER=1 but {exc}", pytrace=False)
    root = Path(tempfile.mkdtemp(prefix="notes-auth-cluster-"))
    topology = Cluster(root)
    try:
        topology.start()
        yield topology
    finally:
        topology.stop()
        if os.environ.get("CLUSTER_KEEP") == "1":
            print(f"\ncluster files kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def load(cluster: Cluster) -> Iterator[Load]:
    background = Load(
        cluster.proxy_url,
        dsns={"auth": cluster.postgres.dsn("auth"), "resource": cluster.postgres.dsn("resource")},
        users=6,
    )
    background.start()
    try:
        yield background
    finally:
        background.stop()
