"""Registration with gymnasium and Ray, and the run_policy helper used by backtests."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import envs
from envs import GYM_ID, EnvConfig, SchemeSpec, env_from_config, make_env, register_ray_env, run_policy
from features.data.schema import DataError
from tests.envs.helpers import bar_panel, costs, random_panel
from tests.envs.scenario import CASH, SINGLE_BARS


def test_gymnasium_make_builds_the_env_from_a_panel_and_a_config() -> None:
    panel = random_panel(np.random.default_rng(0), 300)
    env = gym.make(GYM_ID, panel=panel, config={"window": 16, "episode_length": 50, "action": "weights"})
    obs, info = env.reset(seed=1)
    assert obs.shape == env.observation_space.shape and info["net_worth"] == 10_000.0
    obs, reward, _, _, info = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs) and np.isfinite(float(reward))
    assert isinstance(env.unwrapped, envs.TradingEnv)
    assert env.unwrapped.config.action == SchemeSpec("weights")


def test_rllib_creator_and_ray_registration() -> None:
    panel = random_panel(np.random.default_rng(0), 300)
    env = env_from_config({"panel_fn": lambda: panel, "config": {"window": 8, "mode": "eval"}})
    assert env.config.window == 8 and env.panel is panel
    with pytest.raises(DataError, match="needs 'panel' or 'panel_fn'"):
        env_from_config({"config": {}})
    name = register_ray_env()
    from ray.tune.registry import ENV_CREATOR, _global_registry

    assert _global_registry.contains(ENV_CREATOR, name)
    creator = _global_registry.get(ENV_CREATOR, name)
    assert creator({"panel": panel, "config": {"window": 8, "episode_length": 100}}).panel is panel


def test_run_policy_returns_equity_ledger_and_infos() -> None:
    env = make_env(EnvConfig(window=2, mode="eval", costs=costs()), bar_panel({"binance:BTC/USDT": SINGLE_BARS}))
    actions = iter([1, 0, 2, 0, 0, 0])
    result = run_policy(env, lambda obs, info: next(actions))
    assert result.steps == 6 and len(result.infos) == 7 and not result.terminated
    assert result.equity.index[0].isoformat() == "2024-01-01T01:00:00+00:00"
    assert result.equity.iloc[0] == CASH and len(result.equity) == 7
    assert result.final_net_worth == result.infos[-1]["net_worth"]
    assert result.ledger["status"].to_list() == ["filled", "filled"]
    assert result.totals["fees"] == pytest.approx(float(result.ledger["fee"].sum()))
    assert result.totals["filled"] == 2.0
    assert result.total_reward == pytest.approx(np.log(result.final_net_worth / CASH))
