"""A2C on RLlib's new API stack: config, algorithm and torch learner."""

from rl.algorithms.a2c.a2c import A2C, A2C_NAME, A2CConfig, register_a2c
from rl.algorithms.a2c.a2c_learner import A2CTorchLearner

__all__ = ["A2C", "A2C_NAME", "A2CConfig", "A2CTorchLearner", "register_a2c"]
