"""One local multi-node Ray cluster (head + one worker node, token auth) for the tests of this package.

It gets its own temp dir and ports, so it neither meets a `make cluster-up` cluster nor the local
``ray.init()`` of other test packages in the same session; it is stopped (by its process ids)
when the last test here has run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from cluster.local import ClusterSpec, LocalCluster
from tests.cluster.jobs import TINY_TRAIN, TrainedRun, submit, wait_succeeded

TEST_SPEC = ClusterSpec(root=f"/tmp/mft-ct-{os.getpid()}", port=6392, dashboard_port=8272, port_base=25000)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cluster: multi-node local Ray cluster tests (run in CI)")


@pytest.fixture(scope="package")
def running_cluster() -> Iterator[LocalCluster]:
    cluster = LocalCluster(TEST_SPEC)
    try:
        cluster.up()
        yield cluster
    finally:
        cluster.purge()


@pytest.fixture
def local_cluster(running_cluster: LocalCluster) -> LocalCluster:
    """The package's cluster with every node alive (a fault test may have replaced the worker)."""
    running_cluster.up()
    return running_cluster


@pytest.fixture(scope="package")
def trained_run(running_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> TrainedRun:
    """A tiny PPO run trained by a `ray job submit` with two env runners: one per node."""
    running_cluster.up()
    run_dir = tmp_path_factory.mktemp("cluster-runs")
    command = ["python", "-m", "rl.train", *TINY_TRAIN, "train.iterations=2", "train.num_env_runners=2",
               f"run_dir={run_dir}", "train.run_name=cl"]
    job = wait_succeeded(running_cluster, submit(running_cluster, command, "train"), timeout_s=240)
    return TrainedRun(job, run_dir / "cl")
