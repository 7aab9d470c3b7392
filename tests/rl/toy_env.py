"""A tiny env with the trading env's flat observation layout, for smoke-training the agents.

Observation: ``WINDOW * TOKEN_DIM`` market values (oldest bar first) then ``STATE_DIM`` portfolio
values, all i.i.d. normal. Reward depends only on the newest bar's first feature ``x``:
Discrete(3) pays 1 for action 2 when ``x > 0`` and for action 0 otherwise; Box(1) pays
``-(a - tanh(x))^2``. Episodes are truncated after ``EPISODE_LEN`` steps.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

WINDOW, TOKEN_DIM, STATE_DIM = 4, 2, 2
OBS_DIM = WINDOW * TOKEN_DIM + STATE_DIM
EPISODE_LEN = 16
LAYOUT = {"window": WINDOW, "token_dim": TOKEN_DIM, "state_dim": STATE_DIM}
# Small sizes keep the smoke runs fast on a shared 2-core machine.
TINY_MODEL = LAYOUT | {
    "hidden": [16],
    "conv_channels": [8],
    "d_model": 8,
    "num_heads": 2,
    "num_layers": 1,
    "lstm_cell_size": 8,
    "max_seq_len": 8,
}


class ToyTradingEnv(gym.Env):
    """See the module docstring; ``config={"continuous": True}`` switches to the Box action space."""

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        continuous = bool((config or {}).get("continuous", False))
        self.observation_space = gym.spaces.Box(-10.0, 10.0, (OBS_DIM,), np.float32)
        self.action_space: gym.Space = (
            gym.spaces.Box(-1.0, 1.0, (1,), np.float32) if continuous else gym.spaces.Discrete(3)
        )
        self._rng = np.random.default_rng(0)
        self._obs = np.zeros(OBS_DIM, np.float32)
        self._t = 0

    def _next_obs(self) -> np.ndarray:
        self._obs = self._rng.normal(size=OBS_DIM).astype(np.float32)
        return self._obs

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict]:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._t = 0
        return self._next_obs(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        x = float(self._obs[(WINDOW - 1) * TOKEN_DIM])
        if isinstance(self.action_space, gym.spaces.Box):
            reward = -((float(np.asarray(action).reshape(-1)[0]) - np.tanh(x)) ** 2)
        else:
            reward = float(int(action) == (2 if x > 0 else 0))
        self._t += 1
        return self._next_obs(), reward, False, self._t >= EPISODE_LEN, {}
