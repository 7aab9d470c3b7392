"""Reward schemes against hand computations and independent numpy formulas."""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np
import pytest

from envs import EnvConfig, SchemeSpec, TradingEnv, make_reward_scheme
from envs.records import StepResult
from tests.envs.helpers import bar_panel, costs
from tests.envs.scenario import SINGLE_BARS


def steps(values: list[float], fees: float = 0.0, traded: float = 0.0) -> list[StepResult]:
    out, previous = [], values[0]
    for value in values[1:]:
        step = StepResult()
        step.prev_net_worth, step.net_worth, step.fees, step.traded_notional = previous, value, fees, traded
        out.append(step)
        previous = value
    return out


def rewards(name: str, values: list[float], params: dict | None = None, **extra: float) -> list[float]:
    scheme = make_reward_scheme(name, params)
    scheme.reset(values[0])
    return [scheme.reward(step) for step in steps(values, **extra)]


def test_log_return() -> None:
    assert rewards("log_return", [100.0, 110.0, 99.0]) == pytest.approx([math.log(1.1), math.log(0.9)])


def test_differential_sharpe_ratio_follows_moody_and_saffell() -> None:
    values = [100.0, 101.0, 100.5, 102.0, 101.0]
    returns = [math.log(b / a) for a, b in pairwise(values)]
    eta = 0.1
    a = b = 0.0
    expected = []
    for r in returns:  # D_t = (B dA - A dB / 2) / (B - A^2)^(3/2) with the moments before the update
        delta_a, delta_b = r - a, r * r - b
        variance = b - a * a
        expected.append(0.0 if variance <= 1e-18 else (b * delta_a - 0.5 * a * delta_b) / variance**1.5)
        a, b = a + eta * delta_a, b + eta * delta_b
    got = rewards("dsr", values, {"eta": eta})
    assert got == pytest.approx(expected, rel=1e-12)
    assert got[0] == 0.0 and got[1] != 0.0
    # A loss after gains lowers the Sharpe ratio: the marginal contribution is negative.
    assert got[3] < 0 < got[2]


def test_rolling_sharpe_and_sortino_match_numpy_over_the_window() -> None:
    rng = np.random.default_rng(0)
    values = list(100.0 * np.exp(np.cumsum(rng.normal(0.001, 0.01, 40))))
    returns = np.diff(np.log(values))
    sharpe = rewards("sharpe", values, {"window": 10, "min_periods": 5})
    sortino = rewards("sortino", values, {"window": 10, "min_periods": 5, "target": 0.0})
    assert sharpe[:4] == [0.0] * 4 and sortino[:4] == [0.0] * 4
    for t in range(4, len(returns)):
        window = returns[max(0, t - 9) : t + 1]
        assert sharpe[t] == pytest.approx(window.mean() / window.std(ddof=1), rel=1e-9)
        downside = np.sqrt(np.mean(np.minimum(window, 0.0) ** 2))  # over all returns, not only the losses
        assert sortino[t] == pytest.approx(window.mean() / downside, rel=1e-9)


def test_penalties_and_their_weighted_combination() -> None:
    values = [100.0, 120.0, 90.0, 108.0]
    assert rewards("drawdown_penalty", values) == pytest.approx([0.0, -0.25, -0.1])
    assert rewards("turnover_penalty", values, traded=60.0) == pytest.approx([-0.6, -0.5, -60 / 90])
    assert rewards("cost_penalty", values, fees=1.2) == pytest.approx([-0.012, -0.01, -1.2 / 90])
    combined = rewards("combined", values, {"components": {"log_return": 1.0, "drawdown_penalty": 0.5}})
    logs = [math.log(120 / 100), math.log(90 / 120), math.log(108 / 90)]
    assert combined == pytest.approx([logs[0], logs[1] - 0.125, logs[2] - 0.05])
    long_form = rewards("combined", values, {"components": [
        {"name": "sharpe", "weight": 2.0, "params": {"window": 3, "min_periods": 2}},
        {"name": "turnover_penalty", "weight": 0.1},
    ]}, traded=10.0)
    r = np.diff(np.log(values))
    assert long_form[1] == pytest.approx(2.0 * r[:2].mean() / r[:2].std(ddof=1) - 0.1 * 10 / 120)


def test_the_env_reward_is_the_scheme_applied_to_net_worth() -> None:
    config = EnvConfig(window=2, mode="eval", costs=costs(), reward=SchemeSpec("log_return"))
    env = TradingEnv(bar_panel({"binance:BTC/USDT": SINGLE_BARS}), config)
    _, info = env.reset(seed=0)
    previous = info["net_worth"]
    for action in (1, 0, 2, 0):
        _, reward, _, _, info = env.step(action)
        assert reward == pytest.approx(math.log(info["net_worth"] / previous), rel=1e-12)
        previous = info["net_worth"]
