"""gymnasium's own checker passes for every action scheme, in both episode modes, single and multi-asset."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from envs import ACTION_SCHEMES, EnvConfig, SchemeSpec, TradingEnv
from envs.config import Mode
from tests.envs.helpers import random_panel


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("scheme", sorted(ACTION_SCHEMES))
@pytest.mark.parametrize("instruments", [("binance:BTC/USDT",), ("binance:BTC/USDT", "bitstamp:BTC/USD")])
def test_check_env_passes(scheme: str, mode: Mode, instruments: tuple[str, ...]) -> None:
    panel = random_panel(np.random.default_rng(7), 200, instruments)
    env = TradingEnv(panel, EnvConfig(window=8, episode_length=50, mode=mode, action=SchemeSpec(scheme)),
                     render_mode="ansi")
    with warnings.catch_warnings():
        # Features are unbounded by design; gymnasium warns about infinite Box bounds.
        warnings.filterwarnings("ignore", message=".*infinity.*")
        warnings.filterwarnings("ignore", message=".*alternative render modes.*")  # covered via gymnasium.make
        check_env(env)
    obs, _ = env.reset(seed=3)
    assert obs.shape == (8 * len(instruments) * 2 + 2 * len(instruments) + 2,)
    assert obs.dtype == np.float32 and env.observation_space.contains(obs)
    assert "net worth" in (env.render() or "")
