"""Session-wide test settings: no test writes tracking data into the repository or reports usage."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

os.environ["RAY_USAGE_STATS_ENABLED"] = "0"

# Property tests explore the same examples on every machine: CI is reproducible, not a lottery.
settings.register_profile("mft", derandomize=True, deadline=None, print_blob=True)
settings.load_profile("mft")


@pytest.fixture(scope="session", autouse=True)
def isolated_mlflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """MLflow's default store is ./mlflow.db; every test run gets its own, outside the tree."""
    store = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{store}"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = previous


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """The session's one local Ray (RLlib, sweeps, the policy service), with the service's default
    HTTP front door (HAProxy where ray[serve] bundles it)."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    import ray

    from serve.http_proxy import prepare_local_ray

    if ray.is_initialized():  # started outside this fixture: use it as it is
        yield
        return
    prepare_local_ray("auto", "127.0.0.1")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()
