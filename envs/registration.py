"""Register the environment with gymnasium and, on request, with Ray.

``gymnasium.make("mft/Trading-v0", panel=panel, config=EnvConfig(...))``
works once :mod:`envs` is imported.  Ray is imported only inside
:func:`register_ray_env`, so importing the environments never needs Ray.
RLlib passes ``env_config`` (a dict) to the creator: give it ``panel`` (a
FeaturePanel) or ``panel_fn`` (a zero-argument callable building one on the
worker), and optionally ``config`` (an EnvConfig or a plain dict).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym

from envs.trading_env import TradingEnv
from features.data.schema import DataError

GYM_ID = "mft/Trading-v0"
RAY_NAME = "mft-trading"


def register_gym_env() -> None:
    """Register :data:`GYM_ID` (idempotent)."""
    if GYM_ID not in gym.registry:
        gym.register(id=GYM_ID, entry_point="envs.trading_env:TradingEnv", disable_env_checker=False)


def env_from_config(env_config: Mapping[str, Any]) -> TradingEnv:
    """Build an environment from an RLlib ``env_config``."""
    if "panel" in env_config:
        panel = env_config["panel"]
    elif "panel_fn" in env_config:
        panel = env_config["panel_fn"]()
    else:
        raise DataError(f"env_config needs 'panel' or 'panel_fn'; it has {sorted(env_config)}")
    return TradingEnv(panel, env_config.get("config"), render_mode=env_config.get("render_mode"))


def register_ray_env(name: str = RAY_NAME) -> str:
    """Register the creator with ``ray.tune.registry.register_env``; returns the name to use in configs."""
    from ray.tune.registry import register_env  # lazy: Ray is heavy and optional for the env layer

    register_env(name, env_from_config)
    return name
