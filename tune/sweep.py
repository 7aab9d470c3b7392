"""Hyperparameter sweep: ``python -m tune.sweep data=binance_btc_1h tune=tiny algo=a2c``.

It reads top to bottom:

1. resolve ``configs/sweep.yaml`` (the training config plus the ``tune`` group), build the search
   space from ``tune.space`` (a group chosen on the command line is pinned, not searched);
2. lay walk-forward folds over the training span (the validation span stays untouched);
3. join a Ray cluster (``train.ray_address`` or ``RAY_ADDRESS``, as under ``ray job submit``) or start a
   local Ray sized by ``train.num_cpus``;
4. open the sweep's parent MLflow run, then run Ray Tune: Optuna's sampler proposes configurations,
   each trial trains and scores them on every fold (:mod:`tune.trainable`), ASHA stops poor trials
   after ``grace_period`` fold evaluations; or continue an interrupted experiment (``tune.resume=true``);
5. write the sweep report (:mod:`tune.report`) with the deflated Sharpe ratio and PBO.

The experiment folder ``<tune.storage_path>/<tune.name>`` is a plain Tune experiment
(``tune.ExperimentAnalysis(path)``, Ray's dashboard) plus ``sweep.json`` (the resolved config,
the command line and the parent MLflow run id) and the report files.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import hydra
import mlflow
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from features.data.schema import DataError
from rl.config import TrainConfig
from rl.runs import write_json_atomic
from rl.tracking import tracked_run, tracking_uri
from rl.train import init_ray, quiet
from tune.config import SweepSettings
from tune.folds import sweep_data
from tune.report import build_report, collect_trials, write_report
from tune.space import Parameter, make_sampler, optuna_space, parse_space, searched
from tune.trainable import TrialSetup, run_trial

SWEEP_FILE = "sweep.json"
METRIC, TIME_ATTR = "objective", "evaluations"


@dataclass
class SweepOutcome:
    path: Path  # the experiment folder
    report: dict[str, Any]
    parent_run_id: str


def base_overrides(overrides: Sequence[str]) -> list[str]:
    """The command line without the sweep's own settings: what trials compose configs/config.yaml with."""
    def key(override: str) -> str:
        return override.split("=", 1)[0].lstrip("+~")
    return [o for o in overrides if key(o).split(".")[0].split("/")[0] not in ("tune", "hydra")]


def experiment_path(settings: SweepSettings, run_dir: str) -> Path:
    name = settings.name or f"sweep-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    storage = settings.storage_path or str(Path(run_dir) / "sweeps")
    if "://" in storage:
        raise DataError(f"tune.storage_path {storage}: sweeps live on a (shared) file system path, not a URI")
    return Path(storage).resolve() / name


def concurrency(settings: SweepSettings, cpus_per_trial: int) -> int:
    """Trials at once: as configured, or what the cluster holds with one CPU left for the driver."""
    if settings.max_concurrent_trials:
        return settings.max_concurrent_trials
    import ray

    cpus = int(ray.cluster_resources().get("CPU", 1))
    return max(1, (cpus - 1) // cpus_per_trial)


def trial_name(trial: Any) -> str:
    return f"trial_{trial.trial_id}"


def make_trainable(setup: TrialSetup, config: TrainConfig) -> Any:
    """run_trial with the shared setup and its resources: the trial's CPUs plus any RLlib actors it starts."""
    from ray import tune as ray_tune

    actors = [{"CPU": 1.0}] * (config.train.num_env_runners + config.train.num_learners)
    bundles: list[dict[str, float]] = [{"CPU": float(setup.settings.cpus_per_trial)}, *actors]
    return ray_tune.with_resources(ray_tune.with_parameters(run_trial, setup=setup),
                                   ray_tune.PlacementGroupFactory(bundles))


def make_tuner(trainable: Any, params: Mapping[str, Parameter], settings: SweepSettings, evaluations: int,
               path: Path, callbacks: Sequence[Any]) -> Any:
    from ray import tune as ray_tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search.optuna import OptunaSearch

    searcher = OptunaSearch(space=optuna_space(params), metric=METRIC, mode="max",
                            sampler=make_sampler(settings.searcher))
    scheduler = FIFOScheduler() if settings.scheduler.name == "fifo" else ASHAScheduler(
        time_attr=TIME_ATTR, max_t=evaluations, reduction_factor=settings.scheduler.reduction_factor,
        grace_period=min(settings.scheduler.grace_period, evaluations))
    cpus = settings.cpus_per_trial
    return ray_tune.Tuner(
        trainable,
        tune_config=ray_tune.TuneConfig(
            metric=METRIC, mode="max", search_alg=searcher, scheduler=scheduler,
            num_samples=settings.num_samples, max_concurrent_trials=concurrency(settings, cpus),
            trial_name_creator=trial_name, trial_dirname_creator=trial_name),
        run_config=ray_tune.RunConfig(
            name=path.name, storage_path=str(path.parent), callbacks=list(callbacks), verbose=1,
            checkpoint_config=ray_tune.CheckpointConfig(num_to_keep=1)),
    )


def load_or_start(path: Path, raw: dict[str, Any], overrides: list[str], settings: SweepSettings
                  ) -> dict[str, Any]:
    """The experiment's sweep.json: stored when resuming (its own config wins), new otherwise."""
    from ray import tune as ray_tune

    file = path / SWEEP_FILE
    if settings.resume and file.exists():
        stored: dict[str, Any] = json.loads(file.read_text())
        stored["resuming"] = ray_tune.Tuner.can_restore(str(path))
        return stored
    if file.exists() or (path.exists() and ray_tune.Tuner.can_restore(str(path))):
        raise DataError(f"sweep {path} exists: continue it with tune.resume=true or choose another tune.name")
    return {"raw": raw, "overrides": overrides, "parent_run_id": None, "resuming": False}


def finish_child_runs(report: Mapping[str, Any]) -> None:
    """Trials that Tune stopped (ASHA, or at the last fold) leave their MLflow run open: close it with
    the trial's outcome."""
    client = mlflow.MlflowClient()
    for row in report["trials"]:
        run_id = row.get("mlflow_run_id")
        if run_id and client.get_run(run_id).info.status == "RUNNING":
            status = "FAILED" if row["status"] == "ERROR" else "FINISHED" if row["complete"] else "KILLED"
            client.set_tag(run_id, "tune.complete", str(row["complete"]).lower())
            client.set_terminated(run_id, status)


def log_report(report: Mapping[str, Any], files: Sequence[Path]) -> None:
    """The report's numbers and files on the active (parent) run."""
    numbers = {"n_trials": report["n_trials"], "n_complete": report["n_complete"],
               "best_objective": (report["best"] or {}).get("objective"),
               "deflated_sharpe": (report["deflated_sharpe"] or {}).get("value"),
               "pbo": report["pbo"].get("value")}
    mlflow.log_metrics({k: float(v) for k, v in numbers.items() if v is not None})
    for file in files:
        mlflow.log_artifact(str(file))


def report_sweep(path: Path) -> tuple[dict[str, Any], list[Path]]:
    """Collect the trials of an experiment folder and write its report files."""
    state = json.loads((path / SWEEP_FILE).read_text())
    settings = SweepSettings.from_dict(state["raw"]["tune"])
    trials = collect_trials(path)
    report, matrix = build_report(trials, int(state["evaluations"]), settings.pbo_partitions, path.name)
    return report, write_report(path, report, matrix)


def run_sweep(raw: dict[str, Any], overrides: Sequence[str], callbacks: Sequence[Any] = ()) -> SweepOutcome:
    """Run (or continue) the sweep that ``raw`` (the resolved configs/sweep.yaml) describes."""
    quiet()
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    settings = SweepSettings.from_dict(raw["tune"])
    # Trials run in Ray workers with their own working directory: every path they get is absolute.
    raw = raw | {"run_dir": str(Path(str(raw.get("run_dir", "runs"))).resolve())}
    path = experiment_path(settings, raw["run_dir"])
    state = load_or_start(path, raw, list(overrides), settings)
    raw, settings = state["raw"], SweepSettings.from_dict(state["raw"]["tune"])
    config = TrainConfig.from_dict({k: v for k, v in raw.items() if k != "tune"})
    base = [*base_overrides(state["overrides"]), f"run_dir={raw['run_dir']}"]
    params = searched(parse_space(settings.space), base)
    state["evaluations"] = len(sweep_data(config, settings.folds).folds) * len(settings.seeds)
    init_ray(config)
    path.mkdir(parents=True, exist_ok=True)
    parent_id = state["parent_run_id"]
    with tracked_run(config.run_dir, settings.experiment, path.name, raw, run_id=parent_id) as parent:
        state["parent_run_id"], state["tracking_uri"] = parent.info.run_id, tracking_uri(config.run_dir)
        write_json_atomic(path / SWEEP_FILE, {k: v for k, v in state.items() if k != "resuming"})
        setup = TrialSetup(tuple(base), params, settings, state["tracking_uri"], parent.info.run_id)
        trainable = make_trainable(setup, config)
        if state["resuming"]:
            from ray import tune as ray_tune

            print(f"resuming sweep {path}", flush=True)
            tuner = ray_tune.Tuner.restore(str(path), trainable, resume_errored=True)
        else:
            tuner = make_tuner(trainable, params, settings, state["evaluations"], path, callbacks)
        tuner.fit()
        report, files = report_sweep(path)
        finish_child_runs(report)
        log_report(report, files)
    print(f"sweep {path}: report {path / 'sweep_report.md'}", flush=True)
    return SweepOutcome(path, report, state["parent_run_id"])


@hydra.main(config_path="../configs", config_name="sweep", version_base=None)
def main(cfg: DictConfig) -> None:
    container = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(container, dict)
    raw = {str(k): v for k, v in container.items()}
    run_sweep(raw, list(HydraConfig.get().overrides.task))


if __name__ == "__main__":
    main()
