"""Load a trained agent with everything needed to run it on new data exactly as it was trained.

``load_agent(path)`` accepts a run folder (``runs/<name>``), its ``checkpoints/best`` or any
``checkpoints/iter_*`` folder.  The bundle rebuilds features with the run's fitted pipeline and
feature selection, checks that the data gives the same feature columns and the same number of
instruments the network was built for, and evaluates with the run's environment settings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envs import EnvConfig
from features.data.schema import DataError, Dataset
from features.panel import FeaturePanel
from features.pipeline import FeaturePipeline, FeatureSelection
from rl.module_policy import ModulePolicy, module_path


@dataclass
class AgentBundle:
    run: Path
    checkpoint: Path
    policy: ModulePolicy
    pipeline: FeaturePipeline
    selection: FeatureSelection | None
    env_settings: dict[str, Any]
    data_info: dict[str, Any]

    @property
    def env_config(self) -> EnvConfig:
        return EnvConfig.from_dict(self.env_settings)

    @property
    def timeframe(self) -> str:
        return str(self.data_info["timeframe"])

    @property
    def feature_names(self) -> list[str]:
        return list(self.data_info["feature_names"])

    def panel(self, dataset: Dataset) -> FeaturePanel:
        """Features of `dataset` built exactly as in training, checked against what the model expects."""
        panel = self.pipeline.panel(dataset)
        if self.selection is not None:
            panel = self.selection.apply(panel)
        if list(panel.feature_names) != self.feature_names:
            raise DataError(f"{self.run}: the data gives features {list(panel.feature_names)}, the agent was "
                            f"trained on {self.feature_names}")
        trained = self.data_info["instruments"]
        if len(panel.keys) != len(trained):
            raise DataError(f"{self.run}: the agent was trained on {len(trained)} instrument(s) ({', '.join(trained)})"
                            f"; the data has {len(panel.keys)} ({', '.join(panel.instruments)}): select matching "
                            f"symbols")
        return panel


def run_and_checkpoint(path: str | Path) -> tuple[Path, Path]:
    """(run folder, checkpoint folder) for a run folder or a checkpoint inside one."""
    path = Path(path)
    if (path / "state.json").exists():
        state = json.loads((path / "state.json").read_text())
        best = path / "checkpoints" / "best"
        if not best.exists() and state.get("best_checkpoint"):
            best = path / "checkpoints" / state["best_checkpoint"]
        return path, best
    if path.parent.name == "checkpoints" and (path.parent.parent / "state.json").exists():
        return path.parent.parent, path
    raise FileNotFoundError(f"{path}: not a training run folder (no state.json) or a checkpoint inside one")


def load_agent(path: str | Path) -> AgentBundle:
    run, checkpoint = run_and_checkpoint(path)
    module_path(checkpoint)  # a clear error before RLlib's own
    selection_file = run / "selection.json"
    return AgentBundle(
        run=run,
        checkpoint=checkpoint,
        policy=ModulePolicy.from_checkpoint(checkpoint, name=run.name),
        pipeline=FeaturePipeline.load(run / "features.json"),
        selection=FeatureSelection.load(selection_file) if selection_file.exists() else None,
        env_settings=json.loads((run / "env.json").read_text()),
        data_info=json.loads((run / "data.json").read_text()),
    )
