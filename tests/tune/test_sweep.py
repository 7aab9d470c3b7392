"""A tiny sweep end to end on bundled BTC 1h: interrupted, resumed, reported, tracked and exported.

Three trials of PPO, one training iteration per fold, two folds of 30 training / 10 test days.  The
sweep is interrupted (SIGINT, as Ctrl-C) after its first trial and resumed; then the tests check the
per-fold metrics, the MLflow runs, the deflated Sharpe ratio and PBO against a recomputation from the
saved fold returns, and the ensemble export.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from ray import tune as ray_tune

from features.data.schema import bars_per_year
from rl.artifacts import load_agent
from rl.evaluation.statistics import deflated_sharpe_ratio_of, probability_of_backtest_overfitting
from tune.cli import compose_sweep, register
from tune.export import export_ensemble
from tune.report import per_bar_sharpe, stitched_returns
from tune.sweep import SweepOutcome, run_sweep

pytestmark = [pytest.mark.usefixtures("ray_session"), pytest.mark.filterwarnings("ignore::UserWarning")]

TINY = [
    "data=binance_btc_1h", "data.start=2022-06-01", "data.validation_days=30", "env.window=8",
    "env.episode_length=128", "algo=ppo", "algo.train_batch_size=256", "algo.minibatch_size=64",
    "algo.num_epochs=1", "model=mlp", "tune=tiny", "tune.name=tiny",
    "tune.scheduler.grace_period=2",  # ASHA in place but stopping nobody: PBO needs complete trials
]


class InterruptOnce(ray_tune.Callback):
    """Ctrl-C for the driver after the first trial completes; a marker file makes it happen once."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if not self.marker.exists():
            self.marker.touch()
            os.kill(os.getpid(), signal.SIGINT)


@dataclass
class Sweeps:
    interrupted: SweepOutcome
    resumed: SweepOutcome
    run_dir: Path


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory: pytest.TempPathFactory) -> Sweeps:
    run_dir = tmp_path_factory.mktemp("sweep")
    overrides = [*TINY, f"run_dir={run_dir}"]
    interrupt = InterruptOnce(run_dir / "interrupted")
    interrupted = run_sweep(compose_sweep(overrides), overrides, callbacks=[interrupt])
    # Resuming needs only the experiment's name: the stored config and command line win.
    resume = [f"run_dir={run_dir}", "tune=tiny", "tune.name=tiny", "tune.resume=true"]
    return Sweeps(interrupted, run_sweep(compose_sweep(resume), resume), run_dir)


def child_runs(outcome: SweepOutcome) -> pd.DataFrame:
    return mlflow.search_runs(search_all_experiments=True,
                              filter_string=f"tags.mlflow.parentRunId = '{outcome.parent_run_id}'")


def test_interrupted_sweep_resumes_without_rerunning_finished_trials(sweeps: Sweeps) -> None:
    first, second = sweeps.interrupted.report, sweeps.resumed.report
    assert 1 <= first["n_complete"] < 3
    assert second["n_trials"] == 3 and second["n_complete"] == 3 and second["n_errored"] == 0
    assert sweeps.resumed.parent_run_id == sweeps.interrupted.parent_run_id
    done_before = {row["trial_id"]: row for row in first["trials"] if row["complete"]}
    after = {row["trial_id"]: row for row in second["trials"]}
    client = mlflow.MlflowClient()
    for trial_id, row in done_before.items():
        assert after[trial_id]["objective"] == row["objective"]
        assert after[trial_id]["mlflow_run_id"] == row["mlflow_run_id"]
        # Two evaluations logged once each: the trial did not run again.
        assert [m.step for m in client.get_metric_history(row["mlflow_run_id"], "objective")] == [1, 2]
    assert len(child_runs(sweeps.resumed)) == 3


def test_every_trial_reports_its_folds_and_the_objective_is_their_mean(sweeps: Sweeps) -> None:
    for row in sweeps.resumed.report["trials"]:
        assert row["evaluations"] == 2 and set(row["fold_sharpe"]) == {"0", "1"}
        assert row["objective"] == pytest.approx(np.mean(list(row["fold_sharpe"].values())), abs=1e-12)
    analysis = ray_tune.ExperimentAnalysis(str(sweeps.resumed.path))
    results = {t.trial_id: t.last_result for t in analysis.trials}
    for row in sweeps.resumed.report["trials"]:
        result = results[row["trial_id"]]
        assert result["evaluations"] == 2 and result["objective"] == pytest.approx(row["objective"])
        folds = [result["fold0.sharpe"], result["fold1.sharpe"]]
        assert folds == pytest.approx(list(row["fold_sharpe"].values()))
    best = sweeps.resumed.report["best"]
    assert analysis.get_best_config(metric="objective", mode="max") == best["params"]


def records_of(run_id: str) -> list[dict[str, Any]]:
    return list(mlflow.artifacts.load_dict(f"runs:/{run_id}/folds.json")["records"])


def test_mlflow_has_a_child_run_per_trial_with_params_and_fold_metrics(sweeps: Sweeps) -> None:
    runs = child_runs(sweeps.resumed).set_index("run_id")
    rows = {row["mlflow_run_id"]: row for row in sweeps.resumed.report["trials"]}
    assert set(runs.index) == set(rows)
    for run_id, row in rows.items():
        run = runs.loc[run_id]
        assert run["status"] == "FINISHED" and run["tags.tune.trial_id"] == row["trial_id"]
        assert float(run["params.algo.lr"]) == row["params"]["algo.lr"]
        assert run["params.model.hidden"] == str([row["params"]["model.hidden"]])
        assert run["metrics.objective"] == pytest.approx(row["objective"])
        for fold, sharpe in row["fold_sharpe"].items():
            assert run[f"metrics.fold{fold}.sharpe"] == pytest.approx(sharpe)
        # The logged fold Sharpe is the annualised Sharpe of the saved per-bar test returns.
        for record in records_of(run_id):
            returns = np.asarray(record["returns"])
            assert len(returns) == 240  # 10 test days of hourly bars
            annual = returns.mean() / returns.std(ddof=1) * math.sqrt(bars_per_year("1h"))
            assert record["sharpe"] == pytest.approx(annual, rel=1e-9)
    parent = mlflow.get_run(sweeps.resumed.parent_run_id)
    assert parent.data.metrics["n_trials"] == 3
    dsr = sweeps.resumed.report["deflated_sharpe"]["value"]
    assert parent.data.metrics["deflated_sharpe"] == pytest.approx(dsr)
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(parent.info.run_id)}
    assert {"sweep_report.json", "sweep_report.md", "test_returns.csv"} <= artifacts


def test_deflated_sharpe_and_pbo_match_a_recomputation_from_the_fold_returns(sweeps: Sweeps) -> None:
    report = sweeps.resumed.report
    series = {row["trial_id"]: stitched_returns(records_of(row["mlflow_run_id"])) for row in report["trials"]}
    assert all(len(s) == 480 for s in series.values())
    sharpes = np.array([per_bar_sharpe(s) for s in series.values()])
    best = series[report["best"]["trial_id"]].to_numpy()
    dsr = report["deflated_sharpe"]
    assert dsr["n_trials"] == 3 and dsr["n_obs"] == 480
    assert dsr["value"] == pytest.approx(deflated_sharpe_ratio_of(best, sharpes), abs=1e-12)
    assert 0.0 <= dsr["value"] <= 1.0
    matrix = pd.concat(series, axis=1)
    saved = pd.read_csv(sweeps.resumed.path / "test_returns.csv", index_col=0)
    assert saved.to_numpy() == pytest.approx(matrix[list(saved.columns)].to_numpy(), abs=1e-15)
    pbo = probability_of_backtest_overfitting(matrix.to_numpy(), n_partitions=report["pbo"]["n_partitions"])
    assert report["pbo"]["value"] == pytest.approx(pbo.pbo) and report["pbo"]["n_configs"] == 3


def test_export_writes_an_ensemble_of_loadable_agents(sweeps: Sweeps, tmp_path: Path) -> None:
    path = export_ensemble(sweeps.resumed.path, top_k=2, output=tmp_path / "ensemble.yaml")
    spec = yaml.safe_load(path.read_text())
    ranked = sorted(sweeps.resumed.report["trials"], key=lambda r: r["objective"], reverse=True)
    assert spec["rule"] == "sharpe_weighted"
    assert [m["weight"] for m in spec["members"]] == [r["objective"] for r in ranked[:2]]
    for member in spec["members"]:
        assert set(member) == {"name", "checkpoint", "weight", "algo", "model"}
        assert (member["algo"], member["model"]) == ("ppo", "mlp")
        agent = load_agent(member["checkpoint"])
        assert agent.timeframe == "1h" and agent.policy.module is not None


def test_export_can_retrain_the_best_on_all_training_data(sweeps: Sweeps) -> None:
    path = export_ensemble(sweeps.resumed.path, top_k=1, retrain_members=True,
                           overrides=["train.validation_baselines=false", "train.report=false"])
    member = yaml.safe_load(path.read_text())["members"][0]
    run = Path(member["checkpoint"])
    config = yaml.safe_load((run / "config.yaml").read_text())
    best = sweeps.resumed.report["best"]
    assert config["algo"]["lr"] == best["params"]["algo.lr"] and config["train"]["iterations"] == 1
    assert config["model"]["hidden"] == [best["params"]["model.hidden"]]
    assert load_agent(run).checkpoint.name == "best"


def test_cli_rewrites_the_report(sweeps: Sweeps, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["tune", "report", str(sweeps.resumed.path)])
    assert args.func(args) == 0
    assert f"Best: {sweeps.resumed.report['best']['trial_id']}" in capsys.readouterr().out
