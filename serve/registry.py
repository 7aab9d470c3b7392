"""Member sources: run folders and checkpoints, or MLflow registered-model versions.

``register_run(run, "mft-ppo")`` records a run folder as a new version of a registered model
(the version's ``source`` is the run folder, its MLflow run the training run), and a service
config can then name the member ``models:/mft-ppo/3`` or ``models:/mft-ppo@champion``.  The
response of every decision says which version answered: ``mft-ppo/3`` for registry sources,
``<run>/<checkpoint>@<weights hash>`` for paths.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from features.data.schema import DataError
from rl.artifacts import run_and_checkpoint
from rl.module_policy import module_path
from rl.runs import RunFolder

PREFIX = "models:/"


@dataclass(frozen=True)
class ResolvedSource:
    path: Path  # run folder or checkpoint
    version: str | None  # 'name/3' for registry sources; None: derive from the weights


def _client(tracking_uri: str | None) -> object:
    from mlflow.tracking import MlflowClient

    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        raise DataError(
            "a models:/ member needs an MLflow tracking URI: set mlflow_tracking_uri in the serve config "
            "or MLFLOW_TRACKING_URI"
        )
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def register_run(
    run: str | Path, name: str, tracking_uri: str | None = None, alias: str | None = None
) -> str:
    """Register ``run`` (a run folder or a checkpoint in one) as a new version of ``name``: 'name/N'."""
    from mlflow.exceptions import MlflowException

    folder, checkpoint = run_and_checkpoint(run)
    client = _client(tracking_uri)
    try:
        client.create_registered_model(name)  # type: ignore[attr-defined]
    except MlflowException as err:
        if "already exists" not in str(err).lower() and "RESOURCE_ALREADY_EXISTS" not in str(err):
            raise
    state = RunFolder(folder).load_state()
    version = client.create_model_version(  # type: ignore[attr-defined]
        name,
        source=str(checkpoint.resolve()),
        run_id=None,
        tags={
            "run": folder.name,
            "checkpoint": checkpoint.name,
            "best_sharpe": str(state.best_sharpe),
            "mlflow_run_id": str(state.mlflow_run_id),
        },
        description=f"{folder.name} {checkpoint.name}",
    )
    if alias:
        client.set_registered_model_alias(name, alias, version.version)  # type: ignore[attr-defined]
    return f"{name}/{version.version}"


def resolve_source(source: str, tracking_uri: str | None = None) -> ResolvedSource:
    """The local path behind a member source, and its registry version when it has one."""
    if not source.startswith(PREFIX):
        return ResolvedSource(Path(source), None)
    reference = source[len(PREFIX) :]
    client = _client(tracking_uri)
    if "@" in reference:
        name, alias = reference.split("@", 1)
        found = client.get_model_version_by_alias(name, alias)  # type: ignore[attr-defined]
    elif "/" in reference:
        name, number = reference.rsplit("/", 1)
        found = client.get_model_version(name, number)  # type: ignore[attr-defined]
    else:
        raise DataError(f"member source {source!r}: use models:/<name>/<version> or models:/<name>@<alias>")
    path = Path(str(found.source).removeprefix("file://"))
    if not path.exists():
        raise DataError(f"{source} points at {path}, which does not exist on this machine")
    return ResolvedSource(path, f"{name}/{found.version}")


def weights_version(run: Path, checkpoint: Path) -> str:
    """'<run>/<checkpoint>@<first 10 hex of the weights' SHA-256>': two different weights never share it."""
    digest = hashlib.sha256()
    for file in sorted(module_path(checkpoint).glob("module_state*")):
        digest.update(file.read_bytes())
    return f"{run.name}/{checkpoint.name}@{digest.hexdigest()[:10]}"
