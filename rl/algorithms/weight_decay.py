"""L2 weight decay for RLlib learners, and PPO/DQN learners that support it.

RLlib 2.60 has gradient clipping built in (``config.training(grad_clip=..., grad_clip_by=...)``,
applied in ``Learner.postprocess_gradients``) but no weight-decay setting: ``TorchLearner``
always builds a plain ``torch.optim.Adam``. :class:`WeightDecayMixin` overrides
``configure_optimizers_for_module`` to build Adam with an L2 penalty read from
``config.learners(learner_config_dict={"weight_decay": 1e-4})`` (default 0.0). The penalty is
added to the gradient inside the optimizer step, i.e. after gradient clipping.

Use it with PPO or DQN by choosing the learner class::

    config.learners(learner_class=WeightDecayPPOTorchLearner, learner_config_dict={"weight_decay": 1e-4})

A2C's learner includes the mixin already.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from ray.rllib.algorithms.dqn.torch.dqn_torch_learner import DQNTorchLearner
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.core.learner.torch.torch_learner import TorchLearner

if TYPE_CHECKING:
    from ray.rllib.algorithms.algorithm_config import AlgorithmConfig

WEIGHT_DECAY_KEY = "weight_decay"


def weight_decay_from(config: AlgorithmConfig) -> float:
    """The configured L2 coefficient; rejects negative values instead of ignoring them."""
    value = float(config.learner_config_dict.get(WEIGHT_DECAY_KEY, 0.0))
    if value < 0.0:
        raise ValueError(f"learner_config_dict['{WEIGHT_DECAY_KEY}'] must be >= 0, got {value}")
    return value


class WeightDecayMixin:
    """Put before a ``TorchLearner`` subclass in the bases to get Adam with L2 weight decay."""

    def configure_optimizers_for_module(
        self: Any, module_id: str, config: AlgorithmConfig | None = None
    ) -> None:
        assert config is not None, "RLlib passes the module's AlgorithmConfig"
        params = self.get_parameters(self.module[module_id])
        optimizer = torch.optim.Adam(params, weight_decay=weight_decay_from(config))
        # The lr is owned by RLlib's scheduler (fixed value or schedule from `config.lr`).
        self.register_optimizer(
            module_id=module_id, optimizer=optimizer, params=params, lr_or_lr_schedule=config.lr
        )


class WeightDecayPPOTorchLearner(WeightDecayMixin, PPOTorchLearner):
    """RLlib's PPO torch learner plus ``learner_config_dict['weight_decay']``."""


class WeightDecayDQNTorchLearner(WeightDecayMixin, DQNTorchLearner):
    """RLlib's DQN torch learner plus ``learner_config_dict['weight_decay']``."""


def weight_decay_learner_class(algo: str) -> type[TorchLearner]:
    """The weight-decay-capable learner class for ``algo`` (ppo | a2c | dqn)."""
    from rl.algorithms.a2c import A2CTorchLearner

    learners: dict[str, type[TorchLearner]] = {
        "ppo": WeightDecayPPOTorchLearner,
        "dqn": WeightDecayDQNTorchLearner,
        "a2c": A2CTorchLearner,
    }
    if algo.lower() not in learners:
        raise ValueError(f"unknown algorithm {algo!r}; choose from {sorted(learners)}")
    return learners[algo.lower()]
