"""MLflow tracking: a local SQLite store under the run folder unless MLFLOW_TRACKING_URI says otherwise.

MLflow 3 retired the plain-folder store, so the default is ``sqlite:///<run_dir>/mlflow.db`` with
artifacts in ``<run_dir>/mlartifacts``; ``mlflow ui --backend-store-uri sqlite:///runs/mlflow.db``
shows the runs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow

logging.getLogger("mlflow").setLevel(logging.WARNING)
logging.getLogger("alembic").setLevel(logging.WARNING)


def tracking_uri(run_dir: str | Path) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(run_dir).resolve() / 'mlflow.db'}"


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}: how nested config reaches MLflow parameters."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def use_experiment(run_dir: str | Path, experiment: str) -> str:
    """Point MLflow at the store and make sure the experiment exists; returns its id."""
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(tracking_uri(run_dir))
    found = mlflow.get_experiment_by_name(experiment)
    if found is not None:
        mlflow.set_experiment(experiment_id=found.experiment_id)
        return str(found.experiment_id)
    artifacts = (Path(run_dir).resolve() / "mlartifacts").as_uri()
    experiment_id = mlflow.create_experiment(experiment, artifact_location=artifacts)
    mlflow.set_experiment(experiment_id=experiment_id)
    return str(experiment_id)


@contextmanager
def tracked_run(
    run_dir: str | Path,
    experiment: str,
    run_name: str,
    params: Mapping[str, Any] | None = None,
    *,
    nested: bool = False,
    run_id: str | None = None,
) -> Iterator[mlflow.ActiveRun]:
    """Start (or resume, given run_id) an MLflow run with the flattened params logged."""
    use_experiment(run_dir, experiment)
    with mlflow.start_run(run_id=run_id, run_name=None if run_id else run_name, nested=nested) as run:
        if params and run_id is None:
            flat = {k: str(v)[:500] for k, v in flatten(params).items()}
            items = list(flat.items())
            for start in range(0, len(items), 100):  # MLflow caps a batch at 100 params
                mlflow.log_params(dict(items[start:start + 100]))
        yield run


def log_metrics(metrics: Mapping[str, Any], step: int | None = None, prefix: str = "") -> None:
    """Log the finite numeric entries of a metrics dict (others are skipped, not coerced)."""
    clean = {
        f"{prefix}{k}": float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and abs(float(v)) != float("inf") and v == v
    }
    if clean and mlflow.active_run() is not None:
        mlflow.log_metrics(clean, step=step)
