"""Sizing rules: values against hand formulas, causality, and their effect on orders."""

from __future__ import annotations

import math

import numpy as np
import pytest

from envs import EnvConfig, SchemeSpec, TradingEnv, make_sizing_rule
from features.data.schema import DataError
from tests.envs.helpers import bar_panel, costs
from tests.envs.scenario import CASH, SINGLE_BARS


def closes() -> np.ndarray:
    rng = np.random.default_rng(1)
    return 100 * np.exp(np.cumsum(rng.normal(0.002, 0.01, (60, 2)), axis=0))


def test_kelly_is_mean_over_variance_of_simple_returns_capped() -> None:
    close = closes()
    fractions = make_sizing_rule("kelly", {"lookback": 20, "multiplier": 0.5, "cap": 3.0}).fractions(close, 8760)
    simple = close[1:] / close[:-1] - 1
    for t in (5, 20, 45):
        window = simple[max(0, t - 20) : t]  # returns of bars t-19..t
        expected = min(max(0.5 * window.mean() / window.var(ddof=1), 0.0), 3.0)
        assert fractions[t, 0] == pytest.approx(expected, rel=1e-9)
    assert fractions[0].tolist() == [0.0, 0.0] and fractions[1].tolist() == [0.0, 0.0]  # no estimate yet
    assert fractions.max() <= 3.0


def test_volatility_target_scales_to_the_annual_target() -> None:
    close = closes()
    fractions = make_sizing_rule("vol_target", {"target": 0.2, "lookback": 10, "cap": 5.0}).fractions(close, 8760)
    log = np.diff(np.log(close), axis=0)
    window = log[30:40, 1]  # returns of bars 31..40
    assert fractions[40, 1] == pytest.approx(min(0.2 / (window.std(ddof=1) * math.sqrt(8760)), 5.0), rel=1e-9)


def test_rules_are_causal() -> None:
    close = closes()
    changed = close.copy()
    changed[30:] *= 3.0
    for name in ("kelly", "vol_target", "fixed"):
        rule = make_sizing_rule(name)
        np.testing.assert_array_equal(rule.fractions(close, 8760)[:30], rule.fractions(changed, 8760)[:30])


def test_a_fixed_fraction_scales_buys_but_not_sells() -> None:
    config = EnvConfig(window=2, mode="eval", costs=costs(), action=SchemeSpec("discrete"),
                       sizing=SchemeSpec("fixed", {"fraction": 0.25}))
    env = TradingEnv(bar_panel({"binance:BTC/USDT": SINGLE_BARS}), config)
    env.reset(seed=0)
    _, _, _, _, info = env.step(1)  # all in -> 25% of net worth
    assert info["positions"][0] == pytest.approx(0.25 * CASH / 101.0, rel=1e-12)
    _, _, _, _, info = env.step(2)  # all out is not scaled
    assert info["positions"][0] == 0.0


def test_bad_parameters() -> None:
    with pytest.raises(DataError, match="cap must be a positive number"):
        make_sizing_rule("kelly", {"cap": 0})
    with pytest.raises(DataError, match="bad parameters"):
        make_sizing_rule("fixed", {"fractions": 0.5})
