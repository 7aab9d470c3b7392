"""The Tune function trainable: one sampled configuration, trained and scored on every walk-forward fold.

For each fold (oldest first) and each seed of ``tune.seeds`` the trial trains a fresh agent for
``tune.iterations`` iterations on the fold's training rows and backtests the **final** greedy policy
over the fold's test window, costs on.  Nothing is selected on test data: no checkpoint picking,
no early stopping inside a fold.  After every (fold, seed) evaluation it reports to Tune

* ``objective``: the mean test Sharpe over the evaluations so far (what Optuna and ASHA see);
* ``evaluations``: how many (fold, seed) evaluations are done (ASHA's time attribute);
* ``fold{i}.sharpe``, ``fold{i}.total_return``, ``fold{i}.max_drawdown``: per fold, mean over seeds;

with a checkpoint holding every evaluation so far (metrics and per-bar test returns, ``folds.json``)
and the latest agent as a run folder that :func:`rl.artifacts.load_agent` reads (``agent/``).  A
restarted trial continues after its last reported evaluation.  An undefined Sharpe ratio (an agent
that never left cash has a flat equity curve) scores 0 in the objective; the record keeps null.

Each trial is an MLflow child run of the sweep's parent run (tag ``mlflow.parentRunId``).
"""

from __future__ import annotations

import copy
import json
import math
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import torch
from ray.rllib.core.rl_module.rl_module import RLModule

from features.data.splits import Fold
from rl.backtest import BacktestResult, backtest, jsonable
from rl.builders import PreparedData, algorithm_config, env_config
from rl.config import TrainConfig
from rl.module_policy import ModulePolicy
from rl.runs import RunFolder, RunState
from rl.tracking import flatten, log_metrics, use_experiment
from rl.train import quiet, save_run_inputs, seed_everything
from rl.train_cli import compose_config
from tune.config import SweepSettings
from tune.folds import fold_data, sweep_data
from tune.space import Parameter, trial_overrides

FOLDS_FILE = "folds.json"
AGENT_DIR = "agent"
REPORTED = ("sharpe", "total_return", "max_drawdown")


@dataclass(frozen=True)
class TrialSetup:
    """What every trial of a sweep shares (handed over with ``tune.with_parameters``)."""

    base_overrides: tuple[str, ...]  # the sweep's overrides of configs/config.yaml
    params: dict[str, Parameter]  # the searched parameters
    settings: SweepSettings
    tracking_uri: str  # passed explicitly: a Ray worker may not inherit MLFLOW_TRACKING_URI
    parent_run_id: str


@dataclass
class TrialState:
    """What a trial has done so far; stored in every checkpoint."""

    mlflow_run_id: str | None = None
    overrides: list[str] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)

    def done(self, fold: int, seed: int) -> bool:
        return any(r["fold"] == fold and r["seed"] == seed for r in self.records)


def score(record: Mapping[str, Any]) -> float:
    """The record's contribution to the objective: its test Sharpe, 0 when undefined."""
    sharpe = record.get("sharpe")
    return float(sharpe) if sharpe is not None and math.isfinite(sharpe) else 0.0


def trial_metrics(records: list[dict[str, Any]]) -> dict[str, Any]:
    """What a trial reports to Tune after an evaluation: the running objective and per-fold means."""
    last = records[-1]
    metrics: dict[str, Any] = {
        "objective": float(np.mean([score(r) for r in records])), "evaluations": len(records),
        "fold": last["fold"], "seed": last["seed"], **{k: last[k] for k in REPORTED},
    }
    for fold in sorted({r["fold"] for r in records}):
        mine = [r for r in records if r["fold"] == fold]
        metrics[f"fold{fold}.sharpe"] = float(np.mean([score(r) for r in mine]))
        for key in REPORTED[1:]:
            metrics[f"fold{fold}.{key}"] = float(np.mean([r[key] for r in mine]))
    return metrics


def fold_record(fold: Fold, seed: int, result: BacktestResult) -> dict[str, Any]:
    """One evaluation: the fold's dates, its test metrics and its per-bar test returns."""
    equity = result.equity.to_numpy(dtype=float)
    metrics = jsonable(dict(result.metrics))
    return {
        "fold": fold.index, "seed": seed,
        **{k: getattr(fold, k).isoformat() for k in ("train_start", "train_end", "test_start", "test_end")},
        **{k: metrics.get(k) for k in REPORTED}, "metrics": metrics,
        "timestamps": [t.isoformat() for t in result.equity.index[1:]],
        "returns": (equity[1:] / equity[:-1] - 1.0).tolist(),
    }


def train_and_test(data: PreparedData, config: TrainConfig, seed: int, iterations: int
                   ) -> tuple[BacktestResult, RLModule]:
    """Train a fresh agent on the fold's training rows; backtest its final greedy policy over the test."""
    seed_everything(seed)
    settings = algorithm_config(config.algo, config.model, config.train, config.env, data.train, seed)
    algo = settings.build_algo()
    try:
        for _ in range(iterations):
            algo.train()
        module = copy.deepcopy(algo.get_module())
        assert module is not None, "the algorithm has no default module"
    finally:
        algo.stop()
    policy = ModulePolicy(module, name=f"{config.algo.name}-{config.model.name}")
    return backtest(policy, data.validation, env_config(config.env, "eval"), data.timeframe), module


def write_agent(path: Path, module: Any, data: PreparedData, raw: dict[str, Any], config: TrainConfig,
                record: Mapping[str, Any]) -> None:
    """The agent as a training run folder (features, env, data info, checkpoints/best) for load_agent;
    its ``data.json`` names the fold's test start as validation start, the span it was scored on."""
    run = RunFolder(path).create()
    save_run_inputs(run, raw, data, config)
    module.save_to_path(str(run.best.resolve()))
    run.save_state(RunState(best_sharpe=record["sharpe"], best_checkpoint="best", last_checkpoint="best",
                            finished=True))


def restore_state() -> TrialState:
    from ray import tune as ray_tune

    checkpoint = ray_tune.get_checkpoint()
    if checkpoint is None:
        return TrialState()
    with checkpoint.as_directory() as folder:
        return TrialState(**json.loads((Path(folder) / FOLDS_FILE).read_text()))


def report(state: TrialState, agent: tuple[Any, PreparedData, dict[str, Any], TrainConfig]) -> None:
    """Report the running metrics to Tune with a checkpoint of everything done so far."""
    from ray import tune as ray_tune

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / FOLDS_FILE).write_text(json.dumps(asdict(state)))
        module, data, raw, config = agent
        write_agent(Path(tmp) / AGENT_DIR, module, data, raw, config, state.records[-1])
        ray_tune.report(trial_metrics(state.records), checkpoint=ray_tune.Checkpoint.from_directory(tmp))


@contextmanager
def child_run(setup: TrialSetup, state: TrialState, raw: dict[str, Any], values: Mapping[str, Any]
              ) -> Iterator[mlflow.ActiveRun]:
    """The trial's MLflow run under the sweep's parent (resumed when the trial restarts).

    Tune ends a trial it stops (ASHA, or the last evaluation) with ``SystemExit`` inside ``report``: the
    run is then left open for the driver to close with the trial's final status.
    """
    from ray import tune as ray_tune

    context = ray_tune.get_context()
    os.environ["MLFLOW_TRACKING_URI"] = setup.tracking_uri
    mlflow.set_tracking_uri(setup.tracking_uri)
    experiment_id = use_experiment(raw["run_dir"], setup.settings.experiment)
    run = mlflow.start_run(run_id=state.mlflow_run_id, experiment_id=experiment_id,
                           run_name=None if state.mlflow_run_id else context.get_trial_name())
    if state.mlflow_run_id is None:
        mlflow.set_tags({"mlflow.parentRunId": setup.parent_run_id, "tune.trial_id": context.get_trial_id(),
                         "tune.searched": json.dumps(dict(values), default=str)})
        items = [(k, str(v)[:500]) for k, v in flatten(raw).items()]
        for start in range(0, len(items), 100):  # MLflow caps a batch at 100 params
            mlflow.log_params(dict(items[start:start + 100]))
    try:
        yield run
    except SystemExit:
        raise
    except BaseException:
        mlflow.end_run("FAILED")
        raise
    mlflow.end_run("FINISHED")


def log_evaluation(state: TrialState, settings: SweepSettings) -> None:
    """Per-fold metrics (``fold{i}.sharpe``: the mean over the seeds so far; ``fold{i}.seed{s}.sharpe`` too
    with several seeds), the running objective by evaluation step, and every evaluation so far as the
    ``folds.json`` artifact (logged before Tune may stop the trial)."""
    record, step, metrics = state.records[-1], len(state.records), trial_metrics(state.records)
    fold = f"fold{record['fold']}."
    log_metrics({k: v for k, v in metrics.items() if k.startswith(fold)})
    if len(settings.seeds) > 1:
        log_metrics({k: record[k] for k in REPORTED}, prefix=f"{fold}seed{record['seed']}.")
    log_metrics({**{k: record[k] for k in REPORTED}, "objective": metrics["objective"]}, step=step)
    mlflow.log_dict(asdict(state), FOLDS_FILE)


def run_trial(values: dict[str, Any], setup: TrialSetup) -> None:
    """The Tune trainable: ``values`` are the sampled parameters (see :mod:`tune.space`)."""
    torch.set_num_threads(setup.settings.cpus_per_trial)
    quiet()
    state = restore_state()
    state.overrides = trial_overrides(values, setup.params)
    raw = compose_config([*setup.base_overrides, *state.overrides])
    config = TrainConfig.from_dict(raw)
    data = sweep_data(config, setup.settings.folds)
    with child_run(setup, state, raw, values) as run:
        state.mlflow_run_id = run.info.run_id
        for fold in data.folds:
            pending = [seed for seed in setup.settings.seeds if not state.done(fold.index, seed)]
            prepared = fold_data(data, fold, config) if pending else None
            for seed in pending:
                assert prepared is not None
                result, module = train_and_test(prepared, config, seed, setup.settings.iterations)
                state.records.append(fold_record(fold, seed, result))
                log_evaluation(state, setup.settings)
                report(state, (module, prepared, raw, config))
