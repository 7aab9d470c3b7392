"""Our RLlib algorithms (A2C) and learners adding L2 weight decay to RLlib's PPO and DQN."""

from rl.algorithms.a2c import A2C, A2CConfig, A2CTorchLearner, register_a2c
from rl.algorithms.weight_decay import (
    WeightDecayDQNTorchLearner,
    WeightDecayMixin,
    WeightDecayPPOTorchLearner,
    weight_decay_learner_class,
)

__all__ = [
    "A2C",
    "A2CConfig",
    "A2CTorchLearner",
    "WeightDecayDQNTorchLearner",
    "WeightDecayMixin",
    "WeightDecayPPOTorchLearner",
    "register_a2c",
    "weight_decay_learner_class",
]
