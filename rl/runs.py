"""The folder of one training run, and the small state file that makes it resumable.

::

    runs/<name>/
      config.yaml            resolved configuration of the run
      features.json          the fitted feature pipeline (built the same way at inference)
      selection.json         the selected features, when feature selection is on
      env.json               the evaluation environment settings (costs, window, action scheme)
      state.json             iteration, best validation Sharpe, checkpoints, MLflow run id
      checkpoints/iter_NNNNNN/   RLlib algorithm checkpoints (the best and the latest are kept)
      checkpoints/best/      a copy of the best checkpoint, written when training ends
      evaluation.json        the final out-of-sample evaluation next to buy-and-hold and baselines
      report/                plots, tear sheet, comparison table

``state.json`` is replaced atomically after each checkpoint is complete, so a run killed at any
moment resumes from a checkpoint that was fully written.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


def write_json_atomic(path: Path, payload: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1, default=str))
    os.replace(tmp, path)


@dataclass
class RunState:
    iteration: int = 0
    env_steps: int = 0
    best_sharpe: float | None = None
    best_iteration: int | None = None
    best_checkpoint: str | None = None
    last_checkpoint: str | None = None
    evaluations_without_improvement: int = 0
    stopped_early: bool = False
    finished: bool = False
    mlflow_run_id: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class RunFolder:
    path: Path

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def best(self) -> Path:
        return self.checkpoints / "best"

    @property
    def state_file(self) -> Path:
        return self.path / "state.json"

    @property
    def report(self) -> Path:
        return self.path / "report"

    def create(self) -> RunFolder:
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        return self

    def load_state(self) -> RunState:
        if not self.state_file.exists():
            return RunState()
        return RunState(**json.loads(self.state_file.read_text()))

    def save_state(self, state: RunState) -> None:
        write_json_atomic(self.state_file, asdict(state))

    def checkpoint_dir(self, iteration: int) -> Path:
        return self.checkpoints / f"iter_{iteration:06d}"

    def prune(self, state: RunState) -> None:
        """Keep the best and the latest iteration checkpoints; remove the rest."""
        keep = {state.best_checkpoint, state.last_checkpoint}
        for folder in self.checkpoints.glob("iter_*"):
            if folder.name not in keep:
                shutil.rmtree(folder, ignore_errors=True)

    def publish_best(self, state: RunState) -> Path:
        """Copy the best checkpoint to checkpoints/best (a stable path for serving and backtests)."""
        if state.best_checkpoint is None:
            raise FileNotFoundError(f"{self.path}: no checkpoint was validated")
        tmp = self.checkpoints / "best.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(self.checkpoints / state.best_checkpoint, tmp)
        shutil.rmtree(self.best, ignore_errors=True)
        os.replace(tmp, self.best)
        return self.best
