"""The trained agent as a :class:`~rl.policy.Policy`: only the RLModule, never the whole algorithm.

It acts greedily (argmax for discrete actions, the mean for Gaussian ones) with its recurrent
state carried from step to step.  Backtests, ensembles and the serving layer all use this class.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.rl_module import RLModule
from ray.rllib.utils.numpy import convert_to_numpy

from rl.policy import Policy

MODULE_SUBDIR = Path("learner_group") / "learner" / "rl_module" / DEFAULT_MODULE_ID


def module_path(checkpoint: str | Path) -> Path:
    """The RLModule folder inside an algorithm checkpoint (or the path itself if it already is one), absolute:
    RLlib reads a relative path as a URI without a scheme and refuses it."""
    path = Path(checkpoint).resolve()
    nested = path / MODULE_SUBDIR
    if nested.is_dir():
        return nested
    if (path / "module_state.pt").exists() or (path / "class_and_ctor_args.pkl").exists():
        return path
    raise FileNotFoundError(f"{path}: not an RLlib algorithm or RLModule checkpoint (no {MODULE_SUBDIR})")


class ModulePolicy(Policy):
    """A trained RLModule acting greedily, with recurrent state kept across steps."""

    def __init__(self, module: RLModule, name: str = "agent") -> None:
        self.module = module
        self.name = name
        if isinstance(module, torch.nn.Module):
            module.eval()  # dropout off: decisions are deterministic
        self._state: dict[str, Any] | None = None
        self.last_probabilities: np.ndarray | None = None

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path, name: str | None = None) -> ModulePolicy:
        module = RLModule.from_checkpoint(str(module_path(checkpoint)))
        return cls(module, name or Path(checkpoint).name)

    @property
    def recurrent(self) -> bool:
        return bool(self.module.is_stateful())

    def _reset(self, env: Any) -> None:
        if self.recurrent:
            initial = self.module.get_initial_state()
            self._state = {k: torch.as_tensor(np.asarray(v))[None] for k, v in initial.items()}

    def forward(self, observation: np.ndarray) -> dict[str, Any]:
        """One inference pass; advances the recurrent state."""
        obs = torch.from_numpy(np.asarray(observation, dtype=np.float32))[None]
        batch: dict[str, Any] = {Columns.OBS: obs}
        if self.recurrent:
            if self._state is None:
                self._reset(None)
            batch = {Columns.OBS: obs[:, None], Columns.STATE_IN: self._state}
        with torch.no_grad():
            out = self.module.forward_inference(batch)
        if self.recurrent:
            self._state = out[Columns.STATE_OUT]
        return dict(out)

    def _act(self, observation: np.ndarray) -> Any:
        out = self.forward(observation)
        self.last_probabilities = None
        if Columns.ACTIONS in out:  # Q-networks pick the argmax themselves
            action = np.asarray(convert_to_numpy(out[Columns.ACTIONS])).reshape(-1)
        else:
            inputs = out[Columns.ACTION_DIST_INPUTS]
            dist = self.module.get_inference_action_dist_cls().from_logits(inputs)
            action = np.asarray(convert_to_numpy(dist.to_deterministic().sample())).reshape(-1)
            if isinstance(self.module.action_space, gym.spaces.Discrete):
                self.last_probabilities = torch.softmax(inputs.reshape(-1), dim=0).numpy()
        if np.issubdtype(action.dtype, np.integer):
            return int(action[0]) if isinstance(self.module.action_space, gym.spaces.Discrete) else action
        return action.astype(np.float32)
