"""Q-network RLModule for RLlib's DQN: any backbone, a Q (or dueling advantage + value) head.

Implements what ``DQNLearner``/``DQNTorchLearner`` need in RLlib 2.60: ``QNetAPI.compute_q_values``,
``TargetNetworkAPI`` (``make_target_networks``, ``get_target_network_pairs``, ``forward_target``) and
``_forward_train`` outputs ``qf_preds``, ``qf_next_preds`` (double-Q) and ``qf_target_next_preds``.
DQNConfig auto-inserts ``dueling``, ``double_q``, ``epsilon`` and ``num_atoms`` into the model config.

Only expectation Q-learning (``num_atoms == 1``) is supported: distributional heads are rejected.

Recurrent (``lstm``) backbones train on sequences only with ``EpisodeReplayBuffer`` and with
``max_seq_len`` in the AlgorithmConfig's own model config; RLlib's default
``PrioritizedEpisodeReplayBuffer`` samples single transitions and fails on ``[B, T]`` TD errors.
``rl.models.registry.configure_model`` sets up and checks both (reasons in its module docstring).
"""

from __future__ import annotations

from typing import Any, cast

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.algorithms.dqn.dqn_learner import QF_NEXT_PREDS, QF_PREDS, QF_TARGET_NEXT_PREDS
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.utils import make_target_network
from ray.rllib.core.rl_module.apis import InferenceOnlyAPI, QNetAPI, TargetNetworkAPI
from ray.rllib.core.rl_module.torch.torch_rl_module import TorchRLModule
from ray.rllib.utils.schedules.scheduler import Scheduler
from torch import nn

from rl.models.actor_critic import check_recurrent_config
from rl.models.backbones import build_backbone
from rl.models.base import Backbone
from rl.models.config import ModelConfigError, config_dict, require_space

DEFAULT_EPSILON = [(0, 1.0), (10000, 0.05)]


class QHead(nn.Module):
    """Plain Q head, or dueling: Q = V + A - mean(A)."""

    def __init__(self, in_dim: int, num_actions: int, dueling: bool) -> None:
        super().__init__()
        self.advantage = nn.Linear(in_dim, num_actions)
        self.value = nn.Linear(in_dim, 1) if dueling else None

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        advantages = self.advantage(embedding)
        if self.value is None:
            return advantages
        return self.value(embedding) + advantages - advantages.mean(dim=-1, keepdim=True)


class QNetworkModule(TorchRLModule, QNetAPI, TargetNetworkAPI, InferenceOnlyAPI):
    """Backbone + Q head with target copies; epsilon-greedy exploration."""

    def setup(self) -> None:
        config = config_dict(self.model_config)
        if not isinstance(self.action_space, gym.spaces.Discrete):
            raise ModelConfigError(f"DQN needs a Discrete action space, got {self.action_space}")
        self.num_actions = int(self.action_space.n)
        num_atoms = int(config.get("num_atoms", 1))
        if num_atoms != 1:
            raise ModelConfigError(
                f"num_atoms={num_atoms}: distributional Q-learning is not supported by QNetworkModule; "
                "set DQNConfig.training(num_atoms=1)"
            )
        self.uses_dueling = bool(config.get("dueling", True))
        self.uses_double_q = bool(config.get("double_q", True))
        self.epsilon_schedule = Scheduler(config.get("epsilon", DEFAULT_EPSILON), framework="torch")
        obs_space = require_space(self.observation_space, "observation")
        self.backbone = build_backbone(str(config.get("backbone", "mlp")), obs_space, config)
        check_recurrent_config(self.backbone, config)
        self.q_head = QHead(self.backbone.out_dim, self.num_actions, self.uses_dueling)

    def get_initial_state(self) -> dict[str, np.ndarray]:
        return self.backbone.initial_state()

    def _q_values(self, batch: dict[str, Any], backbone: Backbone, head: nn.Module) -> dict[str, Any]:
        state_in = batch.get(Columns.STATE_IN) if backbone.recurrent else None
        embedding, state_out = backbone(batch[Columns.OBS], state_in)
        out: dict[str, Any] = {QF_PREDS: head(embedding)}
        if backbone.recurrent:
            out[Columns.STATE_OUT] = state_out
        return out

    def compute_q_values(self, batch: dict[str, Any]) -> dict[str, Any]:
        return self._q_values(batch, self.backbone, self.q_head)

    def make_target_networks(self) -> None:
        self._target_backbone = cast(Backbone, make_target_network(self.backbone))
        self._target_q_head = cast(nn.Module, make_target_network(self.q_head))

    def get_target_network_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.backbone, self._target_backbone), (self.q_head, self._target_q_head)]

    def forward_target(self, batch: dict[str, Any]) -> dict[str, Any]:
        return self._q_values(batch, self._target_backbone, self._target_q_head)

    def get_non_inference_attributes(self) -> list[str]:
        return ["_target_backbone", "_target_q_head"]

    def _act(self, batch: dict[str, Any], epsilon: float) -> dict[str, Any]:
        with torch.no_grad():
            q_out = self.compute_q_values(batch)
            greedy = q_out[QF_PREDS].argmax(dim=-1)
            if epsilon > 0.0:
                random = torch.randint_like(greedy, self.num_actions)
                greedy = torch.where(torch.rand(greedy.shape, device=greedy.device) < epsilon, random, greedy)
        out: dict[str, Any] = {Columns.ACTIONS: greedy}
        if Columns.STATE_OUT in q_out:
            out[Columns.STATE_OUT] = q_out[Columns.STATE_OUT]
        return out

    def _forward_inference(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return self._act(batch, epsilon=0.0)

    def _forward_exploration(self, batch: dict[str, Any], t: int = 0, **kwargs: Any) -> dict[str, Any]:
        self.epsilon_schedule.update(t)
        return self._act(batch, epsilon=float(self.epsilon_schedule.get_current_value()))

    def _forward_train(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        if self.inference_only:
            raise RuntimeError(
                "an inference-only QNetworkModule cannot be trained (build it with inference_only=False)"
            )
        current = _sub_batch(batch, Columns.OBS, Columns.STATE_IN)
        following = _sub_batch(batch, Columns.NEXT_OBS, Columns.NEXT_STATE_IN)
        out: dict[str, Any] = {}
        if self.uses_double_q:
            # One pass over [s; s'] gives Q(s, .) and the online Q(s', .) for action selection.
            joined = {key: _concat(current[key], following[key]) for key in current}
            q_out = self.compute_q_values(joined)
            out[QF_PREDS], out[QF_NEXT_PREDS] = torch.chunk(q_out[QF_PREDS], 2, dim=0)
        else:
            q_out = self.compute_q_values(current)
            out[QF_PREDS] = q_out[QF_PREDS]
        target_out = self.forward_target(following)
        out[QF_TARGET_NEXT_PREDS] = target_out[QF_PREDS]
        return out


def _sub_batch(batch: dict[str, Any], obs_key: str, state_key: str) -> dict[str, Any]:
    sub = {Columns.OBS: batch[obs_key]}
    if state_key in batch:
        sub[Columns.STATE_IN] = batch[state_key]
    return sub


def _concat(first: Any, second: Any) -> Any:
    if isinstance(first, dict):
        return {key: torch.cat([first[key], second[key]], dim=0) for key in first}
    return torch.cat([first, second], dim=0)
