"""Baselines against independent vectorised calculations on the bundled data, and their causality."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envs import TradingEnv
from features.data.schema import DataError
from features.panel import FeaturePanel
from features.pipeline.selection import train_split
from rl.backtest import backtest
from rl.baselines import (
    BASELINES,
    Baseline,
    DonchianTrend,
    EqualRiskContribution,
    LearnedBaseline,
    MovingAverageCrossover,
    ZScoreReversion,
    applicable,
    erc_weights,
    make_baseline,
    risk_contributions,
    signal_context,
)
from rl.baselines.learned import training_rows
from tests.rl.backtest_data import config, fee_only, panel

RULES = ["buy_and_hold", "equal_weight", "equal_weight_rebalanced", "ma_crossover", "donchian", "zscore_reversion",
         "erc"]
SMALL: dict[str, dict[str, Any]] = {
    "ma_crossover": {"fast": 10, "slow": 40},
    "donchian": {"lookback_days": [1, 3, 7], "vol_days": 3},
    "zscore_reversion": {"lookback": 24, "entry": 1.5},
    "erc": {"lookback_days": 5, "rebalance_days": 2},
}


@pytest.fixture(scope="module")
def btc() -> FeaturePanel:
    return panel("binance_btc_1h")


@pytest.fixture(scope="module")
def coins() -> FeaturePanel:
    full = panel("binance_1h")
    return full.slice(full.n_bars - 3000, full.n_bars)


def test_buy_and_hold_return_is_the_price_ratio_net_of_costs_over_five_years(btc: FeaturePanel) -> None:
    fee, slip = 0.001, 5e-4
    result = backtest(make_baseline("buy_and_hold"), btc, config(fee_only(fee, 5.0)))
    assert len(result.equity) == btc.n_bars - 31 and result.equity.index.year[0] == 2017  # 5 years of bars
    fill_price = btc.ohlcv[32, 0, 0] * (1 + slip)  # decided at bar 31's close, filled at bar 32's open
    units = min(10_000 / btc.close[31, 0], 10_000 / (fill_price * (1 + fee)))
    cash = 10_000 - units * fill_price * (1 + fee)
    expected = (cash + units * btc.close[32:, 0]) / 10_000
    np.testing.assert_allclose(result.equity.to_numpy()[1:] / 10_000, expected, rtol=1e-9)
    if units < 10_000 / btc.close[31, 0]:  # spent all the cash: the ratio itself
        assert result.metrics["total_return"] == pytest.approx(btc.close[-1, 0] / (fill_price * (1 + fee)) - 1, 1e-9)
    assert result.ledger.height == 1 and result.metrics["exposure"] == pytest.approx(1 - 1 / len(result.equity))


def test_equal_weight_held_matches_an_independent_calculation(coins: FeaturePanel) -> None:
    fee = 0.001
    result = backtest(make_baseline("equal_weight"), coins, config(fee_only(fee)))
    n = len(coins.keys)
    wanted = 10_000 / n / coins.close[31]  # units of 1/N of net worth at the decision close
    opens, cash, units = coins.ohlcv[32, :, 0], 10_000.0, np.zeros(n)
    for i in np.argsort(wanted, kind="stable"):  # the broker fills smaller buys first; the last is cut to cash
        units[i] = min(wanted[i], cash / (opens[i] * (1 + fee)) * (1 - 1e-12))
        cash -= units[i] * opens[i] * (1 + fee)
    expected = cash + coins.close[32:] @ units
    np.testing.assert_allclose(result.equity.to_numpy()[1:], expected, rtol=1e-10)
    assert result.ledger.height == n  # bought once, never traded again


def test_equal_weight_rebalanced_trades_at_each_period_start_only(coins: FeaturePanel) -> None:
    result = backtest(make_baseline("equal_weight_rebalanced", {"rebalance_days": 7}), coins, config(fee_only()))
    decisions = pd.DatetimeIndex(result.ledger["decision_time"].unique().sort().to_list())
    weeks = (decisions - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(days=7)
    assert len(decisions) > 10 and len(set(weeks)) == len(weeks)  # at most one rebalance per 7-day period
    starts = decisions[1:]  # after the first set-up, rebalances fall on the first bar of a period
    assert ((starts - pd.Timestamp(0, tz="UTC")) % pd.Timedelta(days=7) == pd.Timedelta(0)).all()
    weights = result.positions.to_numpy()[-1] * coins.close[-1] / result.equity.iloc[-1]
    assert weights.sum() == pytest.approx(1.0, abs=1e-3)


def test_ma_crossover_positions_are_the_signal_shifted_by_one_bar(btc: FeaturePanel) -> None:
    span = btc.slice(btc.n_bars - 4000, btc.n_bars)
    result = backtest(MovingAverageCrossover(fast=10, slow=40), span, config())
    close = pd.Series(span.close[:, 0])
    signal = (close.rolling(10).mean() > close.rolling(40).mean()).to_numpy()
    held = result.positions.to_numpy()[:, 0]
    assert (held[1:] > 0).tolist() == signal[31:-1].tolist()  # position over bar t+1 = signal at close t
    assert (held[held <= 0] == 0).all() and result.metrics["n_trades"] > 50  # exits leave no dust


def test_zscore_reversion_state_matches_a_plain_loop(btc: FeaturePanel) -> None:
    span = btc.slice(btc.n_bars - 3000, btc.n_bars)
    policy = ZScoreReversion(lookback=24, entry=1.5, exit=0.0)
    close = span.close[:, 0]
    state, expected = 0.0, []
    for t in range(len(close)):
        window = close[max(0, t - 23) : t + 1]
        if t >= 23 and window.std() > 0:
            z = (close[t] - window.mean()) / window.std()
            state = 1.0 if z < -1.5 else 0.0 if z > 0.0 else state
        expected.append(state)
    np.testing.assert_array_equal(policy.target_weights(span)[:, 0], expected)
    assert 0 < np.mean(expected) < 0.5


def test_donchian_weights_are_bounded_and_follow_the_volatility_target(coins: FeaturePanel) -> None:
    policy = DonchianTrend(lookback_days=(1, 3, 7), vol_target=0.4, vol_days=3, rebalance_days=1)
    weights = policy.target_weights(coins)
    n = len(coins.keys)
    assert (weights >= 0).all() and (weights <= 1 / n + 1e-12).all() and (weights.sum(axis=1) <= 1 + 1e-12).all()
    assert 0.05 < (weights > 0).mean() < 0.95
    # On the first bar of a day the scale is min(1, target / annualised std of the last 72 log returns).
    t = int(np.flatnonzero(pd.DatetimeIndex(coins.timestamps).hour == 0)[-1])
    vol = np.diff(np.log(coins.close[t - 72 : t + 1]), axis=0).std(axis=0, ddof=1) * np.sqrt(8760)
    signal = policy.signal(signal_context(coins, None))
    expected = signal.to_numpy()[t] * np.minimum(1.0, 0.4 / vol) / n
    np.testing.assert_allclose(weights[t], expected, rtol=1e-9)


def test_erc_solver_equalises_risk_contributions() -> None:
    rng = np.random.default_rng(0)
    factors = rng.normal(size=(500, 5)) @ rng.normal(size=(5, 5)) * np.array([0.01, 0.02, 0.03, 0.05, 0.08])
    cov = np.cov(factors, rowvar=False)
    weights = erc_weights(cov)
    contributions = risk_contributions(weights, cov)
    assert weights.sum() == pytest.approx(1.0) and (weights > 0).all()
    np.testing.assert_allclose(contributions, contributions.mean(), rtol=1e-7)
    assert weights[0] > weights[-1]  # the least volatile asset gets the most weight


def test_erc_baseline_weights_give_equal_risk_on_the_bundled_coins(coins: FeaturePanel) -> None:
    policy = EqualRiskContribution(lookback_days=5, rebalance_days=2)
    weights = policy.target_weights(coins)
    days = (pd.DatetimeIndex(coins.timestamps) - pd.Timestamp(0)) // pd.Timedelta(days=2)
    t = int(np.flatnonzero(np.diff(np.asarray(days)) != 0)[-1] + 1)  # the last rebalancing bar
    returns = coins.close[t - 120 : t + 1][1:] / coins.close[t - 120 : t + 1][:-1] - 1
    contributions = risk_contributions(weights[t], np.cov(returns, rowvar=False))
    np.testing.assert_allclose(contributions, contributions.mean(), rtol=1e-6)
    assert weights[t].sum() == pytest.approx(1.0) and (weights[t + 1] == weights[t]).all()
    assert not applicable("erc", panel("binance_btc_1h")) and applicable("erc", coins)


def _actions(policy: Baseline, data: FeaturePanel, until: int) -> list[list[float]]:
    env = TradingEnv(data, policy.env_config(config()))
    obs, _ = env.reset()
    policy.reset(env)
    actions = []
    for _ in range(until - env.span.start + 1):
        action = policy.act(obs)
        actions.append([float(a) for a in action])
        obs, *_ = env.step(action)
    return actions


def _perturbed(data: FeaturePanel, after: int, seed: int) -> FeaturePanel:
    rng = np.random.default_rng(seed)
    ohlcv, features = data.ohlcv.copy(), data.features.copy()
    ohlcv[after + 1 :, :, :4] *= rng.uniform(0.5, 1.5, size=(data.n_bars - after - 1, len(data.keys), 1))
    features[after + 1 :] = rng.normal(size=features[after + 1 :].shape)
    return FeaturePanel(data.timestamps, data.keys, data.feature_names, features, ohlcv)


@settings(max_examples=6, deadline=None)
@given(name=st.sampled_from([*RULES, "logistic"]), cut=st.integers(200, 1400), seed=st.integers(0, 2**16))
def test_actions_up_to_t_ignore_every_later_bar(name: str, cut: int, seed: int) -> None:
    full = panel("binance_1h")
    data = full.slice(full.n_bars - 1500, full.n_bars)
    train = full.slice(full.n_bars - 4000, full.n_bars - 1500)
    make = lambda: make_baseline(name, SMALL.get(name), train)  # noqa: E731
    assert _actions(make(), data, cut) == _actions(make(), _perturbed(data, cut, seed), cut)


@pytest.mark.parametrize("name", [n for n in RULES if n != "buy_and_hold"])
def test_target_weights_on_a_prefix_equal_those_on_the_whole_panel(name: str, coins: FeaturePanel) -> None:
    policy = make_baseline(name, SMALL.get(name))
    whole = policy.target_weights(coins)
    for stop in (700, 1900):
        np.testing.assert_array_equal(policy.target_weights(coins.slice(0, stop)), whole[:stop])


def test_learned_baselines_fit_on_training_rows_only() -> None:
    full = panel("binance_1h")
    data = full.slice(full.n_bars - 6000, full.n_bars)
    cut = data.timestamps[4000]
    _, y = training_rows(train_split(data, cut))
    assert len(y) == 6 * 3999  # the last training bar has no next close inside the span: no label
    np.testing.assert_array_equal(y[:3999], data.close[1:4000, 0] > data.close[:3999, 0])
    probe = data.features[4500].astype(np.float64)
    for name in ("knn", "random_forest", "logistic"):
        params = {"n_estimators": 10} if name == "random_forest" else None
        first = make_baseline(name, params, train_split(data, cut))
        second = make_baseline(name, params, train_split(_perturbed(data, 3999, 1), cut))
        assert isinstance(first, LearnedBaseline) and isinstance(second, LearnedBaseline)
        np.testing.assert_array_equal(first.predict_up(probe), second.predict_up(probe))
        changed = make_baseline(name, params, train_split(_perturbed(data, 3000, 1), cut))
        assert isinstance(changed, LearnedBaseline)
        assert not np.array_equal(first.predict_up(probe), changed.predict_up(probe))


def test_registry_builds_every_baseline_and_refuses_bad_requests(coins: FeaturePanel) -> None:
    train = coins.slice(0, 1500)
    for name in BASELINES:
        params = {"n_estimators": 5} if name == "random_forest" else SMALL.get(name)
        policy = make_baseline(name, params, train)
        assert isinstance(policy, Baseline) and policy.name == name
        assert policy.target_weights(coins.slice(1500, 3000)).shape == (1500, 6)
    with pytest.raises(DataError, match="unknown baseline"):
        make_baseline("martingale")
    with pytest.raises(DataError, match="training panel"):
        make_baseline("knn")
    with pytest.raises(DataError, match="bad parameters"):
        make_baseline("ma_crossover", {"speed": 3})
    with pytest.raises(DataError, match="shorter than slow"):
        make_baseline("ma_crossover", {"fast": 50, "slow": 20})
    with pytest.raises(DataError, match="two instruments"):
        make_baseline("erc").target_weights(panel("binance_btc_1h"))
    with pytest.raises(DataError, match="unknown instrument"):
        make_baseline("buy_and_hold", {"instrument": "kraken:DOGE/USD"}).target_weights(coins)
