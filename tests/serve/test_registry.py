"""Members by MLflow registered-model version: register a run, resolve it, serve it, report the version."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from features.data.schema import DataError
from rl.runs import RunFolder, RunState
from serve.config import EnsembleConfig, MemberConfig
from serve.registry import register_run, resolve_source, weights_version
from serve.service import EnsembleService


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def fake_run(root: Path, name: str) -> Path:
    run = RunFolder(root / name).create()
    run.save_state(RunState(best_sharpe=1.25, best_checkpoint="iter_000002"))
    run.best.mkdir()
    return run.path


def test_register_and_resolve_versions_and_aliases(tmp_path: Path, tracking_uri: str) -> None:
    first, second = fake_run(tmp_path, "ppo-a"), fake_run(tmp_path, "ppo-b")
    assert register_run(first, "mft-test", tracking_uri) == "mft-test/1"
    assert register_run(second, "mft-test", tracking_uri, alias="champion") == "mft-test/2"
    one = resolve_source("models:/mft-test/1", tracking_uri)
    assert (one.path, one.version) == (first / "checkpoints" / "best", "mft-test/1")
    assert resolve_source("models:/mft-test@champion", tracking_uri).version == "mft-test/2"
    assert resolve_source("runs/x", tracking_uri).version is None
    with pytest.raises(DataError, match="use models:/<name>/<version> or models:/<name>@<alias>"):
        resolve_source("models:/mft-test", tracking_uri)


def test_a_registered_member_answers_with_its_version(tiny_runs: dict[str, Path], tracking_uri: str) -> None:
    version = register_run(tiny_runs["ppo_mlp"], "mft-serve-ppo", tracking_uri)
    members = (MemberConfig(f"models:/{version}", name="registered"), MemberConfig(str(tiny_runs["dqn_mlp"])))
    service = EnsembleService("main", EnsembleConfig(members=members), tracking_uri=tracking_uri)
    size = next(iter(service.groups.values())).observation_size
    answer = service.decide("s", {"observation": np.zeros(size).tolist()})
    assert answer["versions"]["registered"] == version == "mft-serve-ppo/1"
    run = tiny_runs["dqn_mlp"]
    assert answer["versions"]["dqn_mlp"] == weights_version(run, run / "checkpoints" / "best")
    assert answer["versions"]["dqn_mlp"].startswith("dqn_mlp/best@")
