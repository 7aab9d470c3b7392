"""Typed sweep settings: the ``tune`` Hydra group (``configs/tune/*.yaml``) read into dataclasses.

Every field is documented where it is declared; ``configs/tune/default.yaml`` holds the research
ranges and ``configs/tune/tiny.yaml`` a sweep small enough for tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from features.data.schema import DataError
from rl.config import checked_dataclass

SAMPLERS = ("tpe", "random", "qmc", "cmaes", "gp")
SCHEDULERS = ("asha", "fifo")


@dataclass
class SearcherConfig:
    """The Optuna sampler behind Ray Tune's OptunaSearch."""

    sampler: str = "tpe"  # tpe | random | qmc | cmaes (needs the `cmaes` package) | gp
    seed: int = 0  # sampler seed: the same seed proposes the same configurations
    n_startup_trials: int = 10  # tpe / cmaes / gp: random trials before the model-based proposals

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise DataError(f"tune.searcher.sampler must be one of {', '.join(SAMPLERS)}, "
                            f"got {self.sampler!r}")


@dataclass
class SchedulerConfig:
    """Early stopping of poor trials. ASHA's time unit is one fold evaluation (see docs/tuning.md)."""

    name: str = "asha"  # asha | fifo (no early stopping)
    grace_period: int = 1  # fold evaluations every trial gets before it can be stopped
    reduction_factor: float = 2.0  # ASHA keeps the best 1/reduction_factor at each rung

    def __post_init__(self) -> None:
        if self.name not in SCHEDULERS:
            raise DataError(f"tune.scheduler.name must be one of {', '.join(SCHEDULERS)}, got {self.name!r}")
        if self.grace_period < 1 or self.reduction_factor <= 1:
            raise DataError(f"tune.scheduler needs grace_period >= 1 and reduction_factor > 1, got "
                            f"{self.grace_period}, {self.reduction_factor}")


@dataclass
class FoldsConfig:
    """Walk-forward folds over the training span (the validation span is never touched)."""

    train_days: float = 365.0  # training window of a fold
    test_days: float = 91.0  # test window of a fold (scored out of sample)
    step_days: float = 91.0  # distance between consecutive test windows (= test_days: no overlap)
    purge_days: float = 1.0  # gap between a fold's training end and its test start
    anchored: bool = False  # true: every fold trains from the start of the data (expanding window)
    max_folds: int | None = 4  # keep the most recent N folds; null keeps all

    def __post_init__(self) -> None:
        if self.max_folds is not None and self.max_folds < 1:
            raise DataError(f"tune.folds.max_folds must be >= 1 or null, got {self.max_folds}")


@dataclass
class SweepSettings:
    """One sweep (group ``tune``)."""

    name: str | None = None  # experiment folder under storage_path (default: sweep-<timestamp>)
    storage_path: str | None = None  # where experiments live (default: <run_dir>/sweeps); a URI on a cluster
    resume: bool = False  # continue the experiment `name` after an interruption
    num_samples: int = 50  # trials (configurations tried)
    max_concurrent_trials: int | None = None  # null: (cluster CPUs - 1) // cpus_per_trial, at least 1
    cpus_per_trial: int = 1  # CPUs of one trial (its torch threads, too)
    iterations: int = 20  # training iterations per fold and seed (the final model is scored)
    seeds: list[int] = field(default_factory=lambda: [0])  # training seeds, repeats of every fold
    experiment: str = "mft-tune"  # MLflow experiment
    pbo_partitions: int = 16  # CSCV blocks for PBO (even; reduced when the test returns are short)
    searcher: SearcherConfig = field(default_factory=SearcherConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    folds: FoldsConfig = field(default_factory=FoldsConfig)
    space: dict[str, Any] = field(default_factory=dict)  # the search space tree, see tune.space

    def __post_init__(self) -> None:
        if self.num_samples < 1 or self.iterations < 1 or self.cpus_per_trial < 1:
            raise DataError("tune.num_samples, tune.iterations and tune.cpus_per_trial must be >= 1")
        if not self.seeds:
            raise DataError("tune.seeds needs at least one seed")
        if self.resume and not self.name:
            raise DataError("tune.resume=true needs tune.name: the experiment to continue")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> SweepSettings:
        values = dict(values)
        nested = {
            "searcher": checked_dataclass(SearcherConfig, values.pop("searcher", None), "tune.searcher"),
            "scheduler": checked_dataclass(SchedulerConfig, values.pop("scheduler", None), "tune.scheduler"),
            "folds": checked_dataclass(FoldsConfig, values.pop("folds", None), "tune.folds"),
        }
        space = dict(values.pop("space", None) or {})
        if "seeds" in values:
            values["seeds"] = [int(s) for s in values["seeds"] or []]
        settings: SweepSettings = checked_dataclass(cls, values | nested | {"space": space}, "tune config")
        return settings

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
