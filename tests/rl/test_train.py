"""The training entry point end to end on bundled BTC 1h: run folder, MLflow, determinism, resume after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import mlflow
import pytest

from rl.artifacts import load_agent
from rl.tracking import tracking_uri
from rl.train_cli import compose_config, run_training

pytestmark = [pytest.mark.usefixtures("ray_session"), pytest.mark.filterwarnings("ignore::UserWarning")]

TINY = [
    "data=binance_btc_1h", "data.start=2022-03-01", "data.validation_days=45", "features=minimal",
    "env.window=8", "env.episode_length=128", "algo=ppo", "algo.train_batch_size=256", "algo.minibatch_size=64",
    "algo.num_epochs=1", "model=mlp", "model.hidden=[16]", "train.eval_every=1",
    "train.validation_baselines=false", "train.report=false",
]


def tiny(run_dir: Path, name: str, *extra: str) -> list[str]:
    return [*TINY, f"run_dir={run_dir}", f"train.run_name={name}", *extra]


def test_run_folder_mlflow_and_final_evaluation(tmp_path: Path) -> None:
    outcome = run_training(tiny(tmp_path, "basic", "train.iterations=2", "train.validation_baselines=true"))
    run = outcome.run.path
    state = json.loads((run / "state.json").read_text())
    assert state["iteration"] == 2 and state["finished"] and state["best_checkpoint"].startswith("iter_")
    assert [h["iteration"] for h in state["history"]] == [1, 2]
    assert (run / "checkpoints" / "best").is_dir() and (run / "features.json").exists()
    evaluation = json.loads((run / "checkpoints" / "best" / "evaluation.json").read_text())
    metrics = evaluation["metrics"]
    # The agent stands next to buy-and-hold and the baselines on the same span.
    assert {"buy_and_hold", "ma_crossover", "donchian", "logistic"} <= set(metrics)
    assert evaluation["span"]["bars"] == 45 * 24
    best_val = max(h["sharpe"] for h in state["history"])
    assert metrics[evaluation["agent"]]["sharpe"] == pytest.approx(best_val, abs=1e-9)
    mlflow.set_tracking_uri(tracking_uri(tmp_path))
    logged = mlflow.get_run(state["mlflow_run_id"]).data
    assert logged.params["algo.clip_param"] == "0.2" and logged.params["env.fee"] == "0.001"
    assert "val.sharpe" in logged.metrics and "final.sharpe" in logged.metrics
    # The stored run rebuilds features exactly as trained and acts like the trained module.
    agent = load_agent(run)
    assert agent.feature_names == list(json.loads((run / "data.json").read_text())["feature_names"])


def test_a_relative_run_dir_trains_and_evaluates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`mft demo` writes to runs/demo, relative to where it runs (RLlib refuses relative checkpoint paths)."""
    monkeypatch.chdir(tmp_path)
    outcome = run_training([*TINY, "run_dir=runs", "train.run_name=relative", "train.iterations=1"])
    assert outcome.run.path.resolve() == (tmp_path / "runs" / "relative").resolve()
    assert {outcome.evaluation["agent"], "buy_and_hold"} <= set(outcome.evaluation["metrics"])
    assert load_agent(Path("runs") / "relative").feature_names  # the stored run loads from a relative path too


def test_same_seed_same_result(tmp_path: Path) -> None:
    first = run_training(tiny(tmp_path, "a", "train.iterations=2", "seed=7"))
    second = run_training(tiny(tmp_path, "b", "train.iterations=2", "seed=7"))
    keys = ("sharpe", "total_return", "n_trades")
    assert [{k: h[k] for k in keys} for h in first.state.history] == [
        {k: h[k] for k in keys} for h in second.state.history]


def _wait_for_checkpoint(state_file: Path, process: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"training exited early with code {process.returncode}")
        if state_file.exists():
            state = json.loads(state_file.read_text())
            if state.get("last_checkpoint") and state["iteration"] >= 2:
                return dict(state)
        time.sleep(0.5)
    raise AssertionError("no checkpoint within the time limit")


def test_killed_run_resumes_from_its_last_checkpoint(tmp_path: Path) -> None:
    overrides = tiny(tmp_path, "killed", "train.iterations=200", "train.patience=1000", "train.num_cpus=1")
    env = os.environ | {"RAY_USAGE_STATS_ENABLED": "0"}
    process = subprocess.Popen([sys.executable, "-m", "rl.train", *overrides], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        seen = _wait_for_checkpoint(tmp_path / "killed" / "state.json", process, timeout=240)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # no clean shutdown: the process group dies at once
        process.wait()
    state = json.loads((tmp_path / "killed" / "state.json").read_text())
    assert state["iteration"] >= seen["iteration"] and not state["finished"]
    resumed_from = state["iteration"]
    target = resumed_from + 1
    outcome = run_training([*overrides[:-3], f"train.iterations={target}",
                            f"train.resume={tmp_path / 'killed'}"])
    assert outcome.state.iteration == target and outcome.state.finished
    # The resumed algorithm continued counting environment steps from the checkpoint, not from zero.
    assert outcome.state.env_steps >= (resumed_from + 1) * 256
    assert outcome.state.mlflow_run_id == state["mlflow_run_id"]


def test_config_composes_for_every_algo_and_model() -> None:
    for algo in ("ppo", "a2c", "dqn"):
        for model in ("mlp", "cnn", "lstm", "attention"):
            raw = compose_config([f"algo={algo}", f"model={model}", "env.fee=0.002"])
            assert raw["algo"]["name"] == algo and raw["model"]["name"] == model and raw["env"]["fee"] == 0.002
