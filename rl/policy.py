"""Policies that act in a trading environment: trained RLModules and the baselines, behind one interface.

A :class:`Policy` is reset at the start of an episode (it may read the environment's panel, the
data it is allowed to see) and then asked for an action for each observation, in order.  The
trained agent is :class:`rl.module_policy.ModulePolicy`; the baselines are in :mod:`rl.baselines`.
This module stays free of torch and Ray so that baselines and backtests load fast.
"""

from __future__ import annotations

import abc
from typing import Any

import numpy as np


class Policy(abc.ABC):
    """Something that maps observations to actions, one episode at a time."""

    name: str = "policy"

    def reset(self, env: Any) -> None:
        """Start an episode in ``env`` (baselines read its panel; agents clear their memory)."""
        self._reset(env)

    def act(self, observation: np.ndarray) -> Any:
        """The action for the observation at the close of the current bar."""
        return self._act(np.asarray(observation, dtype=np.float32))

    def _reset(self, env: Any) -> None:  # noqa: B027 - optional hook: stateless policies need nothing
        """Hook: prepare for an episode."""

    @abc.abstractmethod
    def _act(self, observation: np.ndarray) -> Any:
        """Hook: the action for one observation."""
