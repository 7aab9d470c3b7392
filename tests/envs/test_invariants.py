"""Property tests of the accounting: they hold for every scheme, cost setting and random path."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envs import ACTION_SCHEMES, CostConfig, EnvConfig, FeeSchedule, SchemeSpec, TradingEnv
from tests.envs.helpers import random_panel

SCHEMES = sorted(ACTION_SCHEMES)
PROPERTY = settings(max_examples=40, deadline=None)


@st.composite
def cost_configs(draw: st.DrawFn) -> CostConfig:
    if draw(st.booleans()):
        return CostConfig.zero()
    fee = draw(st.floats(0.0, 0.005))
    return CostConfig(
        fees={"bitstamp": FeeSchedule(maker=fee / 2, taker=draw(st.floats(0.0, 0.005)))},
        default_fees=FeeSchedule(maker=fee / 2, taker=fee),
        slippage_bps=draw(st.floats(0.0, 50.0)),
        slippage_vol_mult=draw(st.floats(0.0, 1.0)),
        impact_coef=draw(st.floats(0.0, 2.0)),
        impact_exponent=draw(st.sampled_from([0.5, 1.0])),
        min_order_notional=draw(st.sampled_from([0.0, 10.0])),
    )


@st.composite
def episodes(draw: st.DrawFn) -> tuple[TradingEnv, list[dict[str, Any]], pl.DataFrame]:
    """Run a random action sequence through a random two-venue panel; returns env, infos, ledger."""
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    names = ("binance:BTC/USDT", "bitstamp:BTC/USD")[: draw(st.integers(1, 2))]
    panel = random_panel(rng, 40, names, volume=draw(st.sampled_from([1e3, 1e6])))
    short = draw(st.booleans())
    scheme = draw(st.sampled_from(SCHEMES))
    params = {"ttl_bars": draw(st.integers(1, 3))} if scheme == "limit" else {}
    config = EnvConfig(window=3, mode="eval", costs=draw(cost_configs()), action=SchemeSpec(scheme, params),
                       allow_short=short, max_leverage=draw(st.sampled_from([1.0, 2.0])) if short else 1.0)
    env = TradingEnv(panel, config)
    env.action_space.seed(seed)
    _, info = env.reset(seed=seed)
    infos = [info]
    done = False
    while not done:
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        infos.append(info)
        done = terminated or truncated
    return env, infos, env.ledger.to_frame()


def _signed(ledger: pl.DataFrame) -> pl.DataFrame:
    fills = ledger.filter(pl.col("status") == "filled")
    sign = pl.when(pl.col("side") == "buy").then(1.0).otherwise(-1.0)
    return fills.with_columns((sign * pl.col("filled_quantity")).alias("q"))


@PROPERTY
@given(episodes())
def test_net_worth_moves_only_by_price_changes_trades_at_their_price_and_costs(run: Any) -> None:
    """nw_t - nw_{t-1} = sum(units_before * (close_t - close_{t-1})) + sum(q * (close_t - fill price)) - fees."""
    env, infos, ledger = run
    close = env.panel.close
    index = {name: i for i, name in enumerate(env.panel.instruments)}
    fills = _signed(ledger)
    for before, after in pairwise(infos):
        bar = after["bar"]
        expected = before["net_worth"] + float(np.dot(before["positions"], close[bar] - close[bar - 1]))
        for row in fills.filter(pl.col("fill_bar") == bar).iter_rows(named=True):
            expected += row["q"] * (close[bar, index[row["instrument"]]] - row["fill_price"]) - row["fee"]
        assert after["net_worth"] == pytest.approx(expected, rel=1e-9, abs=1e-7)
        assert after["net_worth"] == pytest.approx(after["cash"] + float(np.dot(after["positions"], close[bar])),
                                                   rel=1e-12, abs=1e-9)


@PROPERTY
@given(episodes())
def test_costs_are_never_negative_and_are_exactly_what_the_price_gave_away(run: Any) -> None:
    env, _, ledger = run
    fills = _signed(ledger)
    assert (ledger["fee"] >= 0).all() and (ledger["slippage"] >= 0).all() and (ledger["impact"] >= 0).all()
    opens = env.panel.ohlcv[:, :, 0]
    index = {name: i for i, name in enumerate(env.panel.instruments)}
    for row in fills.iter_rows(named=True):
        reference = opens[row["fill_bar"], index[row["instrument"]]]
        paid = abs(row["q"]) * (row["fill_price"] - reference) * (1 if row["q"] > 0 else -1)
        if row["order_type"] == "market":
            assert paid == pytest.approx(row["slippage"] + row["impact"], rel=1e-9, abs=1e-9)
        else:  # a limit order never pays more than the open
            assert paid <= 1e-9 and row["slippage"] == 0.0 and row["impact"] == 0.0
    # Replaying the same fills at zero cost would end richer by exactly the costs paid.
    final = env.ledger.equity[-1]
    zero_cost_cash = env.config.initial_cash
    for row in fills.iter_rows(named=True):
        market = row["order_type"] == "market"
        reference = opens[row["fill_bar"], index[row["instrument"]]] if market else row["fill_price"]
        zero_cost_cash -= row["q"] * reference
    units = np.zeros(len(index))
    for row in fills.iter_rows(named=True):
        units[index[row["instrument"]]] += row["q"]
    zero_cost = zero_cost_cash + float(np.dot(units, env.panel.close[env.span.end]))
    costs = float(ledger["fee"].sum() + ledger["slippage"].sum() + ledger["impact"].sum())
    assert zero_cost - final == pytest.approx(costs, rel=1e-7, abs=1e-6)
    assert final <= zero_cost + 1e-9


@PROPERTY
@given(episodes())
def test_fills_come_after_the_decision_and_inside_their_bar(run: Any) -> None:
    env, _, ledger = run
    ohlcv = env.panel.ohlcv
    index = {name: i for i, name in enumerate(env.panel.instruments)}
    for row in _signed(ledger).iter_rows(named=True):
        bar, i = row["fill_bar"], index[row["instrument"]]
        low, high = ohlcv[bar, i, 2], ohlcv[bar, i, 1]
        assert row["decision_bar"] < bar <= row["expiry_bar"]
        if row["order_type"] == "market":
            assert bar == row["decision_bar"] + 1
            assert low <= ohlcv[bar, i, 0] <= high  # the reference price (open) is a price of the fill bar
        else:
            assert low - 1e-9 <= row["fill_price"] <= high + 1e-9
            limit = row["limit_price"]
            assert row["fill_price"] <= limit if row["q"] > 0 else row["fill_price"] >= limit
    # Every order ends in a final state; nothing is left pending after the episode.
    assert set(ledger["status"].to_list()) <= {"filled", "expired", "rejected", "cancelled"}


@PROPERTY
@given(episodes())
def test_positions_grow_only_within_the_cash_or_leverage_limit(run: Any) -> None:
    """Long only: cash and units never go negative.  With shorts: after a bar in which a position grew,
    gross exposure at that bar's open is within max_leverage times net worth at the open."""
    env, infos, _ = run
    if not env.config.allow_short:
        assert all(info["cash"] >= 0.0 and min(info["positions"]) >= 0.0 for info in infos)
        return
    for before, after in pairwise(infos):
        units_before, units_after = np.abs(before["positions"]), np.abs(after["positions"])
        if not (units_after > units_before + 1e-12).any():
            continue
        opens = env.panel.ohlcv[after["bar"], :, 0]
        equity = after["cash"] + float(np.dot(after["positions"], opens))
        gross = float(np.dot(units_after, opens))
        assert gross <= env.config.max_leverage * equity * (1 + 1e-9) + 1e-9


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from(SCHEMES))
def test_the_same_seed_gives_the_same_episode(seed: int, scheme: str) -> None:
    panel = random_panel(np.random.default_rng(seed), 120)
    config = EnvConfig(window=4, episode_length=30, mode="train", action=SchemeSpec(scheme),
                       augmentations=(SchemeSpec("feature_noise", {"std": 0.1}), SchemeSpec("time_shift")))

    def episode() -> tuple[list[np.ndarray], list[float], list[dict[str, Any]], pl.DataFrame]:
        env = TradingEnv(panel, config)
        env.action_space.seed(seed)
        obs, info = env.reset(seed=seed)
        observations, rewards, infos = [obs], [], [info]
        for _ in range(30):
            obs, reward, _, _, info = env.step(env.action_space.sample())
            observations.append(obs)
            rewards.append(float(reward))
            infos.append(info)
        return observations, rewards, infos, env.ledger.to_frame()

    first, second = episode(), episode()
    assert all(np.array_equal(a, b) for a, b in zip(first[0], second[0], strict=True))
    assert first[1] == second[1]
    assert [i["bar"] for i in first[2]] == [i["bar"] for i in second[2]]
    assert [i["net_worth"] for i in first[2]] == [i["net_worth"] for i in second[2]]
    assert first[3].equals(second[3])
