"""Actor-critic RLModule: any backbone as a shared trunk, a policy head (pi) and a value head (vf).

Works with RLlib's PPO and with our A2C (both need ``ValueFunctionAPI``). The backbone is chosen by
``model_config["backbone"]`` (``mlp`` | ``cnn`` | ``lstm`` | ``attention``). Action spaces:

- ``Discrete(n)``: ``n`` logits, ``TorchCategorical``.
- ``MultiDiscrete(nvec)``: ``sum(nvec)`` logits, ``TorchMultiCategorical`` (one categorical per dim).
- 1-D ``Box``: diagonal Gaussian, the head outputs mean and log-std (``TorchDiagGaussian``);
  log-std is clamped to ``model_config["log_std_bounds"]`` (default [-5, 2]).

Dropout in the backbone is active only in ``forward_train``; sampling runs the module in eval mode.
"""

from __future__ import annotations

from typing import Any, cast

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.distribution.distribution import Distribution
from ray.rllib.core.distribution.torch.torch_distribution import (
    TorchCategorical,
    TorchDiagGaussian,
    TorchMultiCategorical,
)
from ray.rllib.core.rl_module.apis.value_function_api import ValueFunctionAPI
from ray.rllib.core.rl_module.torch.torch_rl_module import TorchRLModule
from torch import nn

from rl.models.backbones import build_backbone
from rl.models.base import Backbone, State
from rl.models.config import ModelConfigError, config_dict, require_space


def action_head_spec(action_space: gym.Space) -> tuple[int, type[Distribution]]:
    """Number of policy-head outputs and the RLlib distribution class for ``action_space``."""
    if isinstance(action_space, gym.spaces.Discrete):
        return int(action_space.n), TorchCategorical
    if isinstance(action_space, gym.spaces.MultiDiscrete):
        if len(action_space.nvec.shape) != 1:
            raise ModelConfigError(
                f"MultiDiscrete action space must be 1-D, got nvec shape {action_space.nvec.shape}"
            )
        partial = TorchMultiCategorical.get_partial_dist_cls(  # type: ignore[misc]  # RLlib mis-annotates cls
            space=action_space, input_lens=[int(n) for n in action_space.nvec]
        )
        return int(action_space.nvec.sum()), cast(type[Distribution], partial)
    if isinstance(action_space, gym.spaces.Box) and len(action_space.shape) == 1:
        return 2 * int(action_space.shape[0]), TorchDiagGaussian
    raise ModelConfigError(
        f"unsupported action space {action_space}: use Discrete, 1-D MultiDiscrete or 1-D Box"
    )


def check_recurrent_config(backbone: Backbone, model_config: dict[str, Any]) -> None:
    """RLlib's connectors read ``max_seq_len`` from the model config of stateful modules."""
    if backbone.recurrent and int(model_config.get("max_seq_len") or 0) < 1:
        raise ModelConfigError(
            "a recurrent backbone needs model_config['max_seq_len'] >= 1 (training sequence length)"
        )


def init_linear(layer: nn.Linear, gain: float) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, gain=gain)
    nn.init.zeros_(layer.bias)
    return layer


class ActorCriticModule(TorchRLModule, ValueFunctionAPI):
    """Shared backbone trunk with policy and value heads."""

    def setup(self) -> None:
        config = config_dict(self.model_config)
        obs_space = require_space(self.observation_space, "observation")
        self.backbone = build_backbone(str(config.get("backbone", "mlp")), obs_space, config)
        check_recurrent_config(self.backbone, config)
        num_outputs, self.action_dist_cls = action_head_spec(require_space(self.action_space, "action"))
        self.is_gaussian = self.action_dist_cls is TorchDiagGaussian
        low, high = (float(b) for b in config.get("log_std_bounds", (-5.0, 2.0)))
        if low >= high:
            raise ModelConfigError(
                f"model_config['log_std_bounds'] must be [low, high] with low < high, got {low, high}"
            )
        self.log_std_bounds = (low, high)
        # Small policy-head gain starts the policy near uniform / near-zero mean.
        self.pi = init_linear(nn.Linear(self.backbone.out_dim, num_outputs), gain=0.01)
        self.vf = init_linear(nn.Linear(self.backbone.out_dim, 1), gain=1.0)

    def get_initial_state(self) -> dict[str, np.ndarray]:
        return self.backbone.initial_state()

    def _embed(self, batch: dict[str, Any]) -> tuple[torch.Tensor, State]:
        state_in = batch.get(Columns.STATE_IN) if self.backbone.recurrent else None
        return self.backbone(batch[Columns.OBS], state_in)

    def _policy_inputs(self, embedding: torch.Tensor) -> torch.Tensor:
        logits = self.pi(embedding)
        if not self.is_gaussian:
            return logits
        mean, log_std = logits.chunk(2, dim=-1)
        return torch.cat([mean, log_std.clamp(*self.log_std_bounds)], dim=-1)

    def _outputs(self, batch: dict[str, Any], *, with_embeddings: bool) -> dict[str, Any]:
        embedding, state_out = self._embed(batch)
        out: dict[str, Any] = {Columns.ACTION_DIST_INPUTS: self._policy_inputs(embedding)}
        if self.backbone.recurrent:
            out[Columns.STATE_OUT] = state_out
        if with_embeddings:
            out[Columns.EMBEDDINGS] = embedding
        return out

    def _forward(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return self._outputs(batch, with_embeddings=False)

    def _forward_train(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return self._outputs(batch, with_embeddings=True)

    def compute_values(self, batch: dict[str, Any], embeddings: Any | None = None) -> torch.Tensor:
        if embeddings is None:
            embeddings, _ = self._embed(batch)
        return self.vf(embeddings).squeeze(-1)
