"""The observation layout: a window of features per instrument, then the portfolio state."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from envs import EnvConfig, SchemeSpec, TradingEnv, split_observation
from tests.envs.helpers import bar_panel, costs
from tests.envs.scenario import BINANCE_BARS, BITSTAMP_BARS

NAMES = ("binance:BTC/USDT", "bitstamp:BTC/USD")


def env() -> TradingEnv:
    panel = bar_panel({NAMES[0]: BINANCE_BARS, NAMES[1]: BITSTAMP_BARS})
    return TradingEnv(panel, EnvConfig(window=3, mode="eval", costs=costs(), action=SchemeSpec("multi_discrete")))


def test_market_part_is_the_last_window_of_features_oldest_first() -> None:
    trading = env()
    obs, _ = trading.reset(seed=0)
    market, portfolio = split_observation(obs, trading.layout)
    assert market.shape == (3, 2, 2) and portfolio.shape == (6,)
    np.testing.assert_array_equal(market, trading.panel.features[0:3])  # first decision bar is 2
    assert market[:, 0, 1].tolist() == [0.0, 1.0, 2.0]  # the bar-index feature
    obs, _, _, _, _ = trading.step((0, 0))
    np.testing.assert_array_equal(split_observation(obs, trading.layout)[0], trading.panel.features[1:4])


def test_portfolio_part_holds_weights_cash_unrealised_pnl_and_idle_time() -> None:
    trading = env()
    trading.reset(seed=0)
    assert trading.layout.portfolio_names == (
        "weight[binance:BTC/USDT]", "weight[bitstamp:BTC/USD]", "cash_share",
        "unrealised_pnl[binance:BTC/USDT]", "unrealised_pnl[bitstamp:BTC/USD]", "time_since_trade",
    )
    obs, _, _, _, info = trading.step((1, 5))  # buy 20% of bitstamp at bar 3's open
    held = info["positions"][1]
    entry = trading.ledger.orders[0].fill_price
    worth = info["net_worth"]
    expected = [0.0, held * 51.5 / worth, info["cash"] / worth, 0.0, held * (51.5 - entry) / worth, 0.0]
    assert split_observation(obs, trading.layout)[1] == pytest.approx(expected, rel=1e-6)
    obs, _, _, _, _ = trading.step((0, 0))  # one bar without a fill
    assert split_observation(obs, trading.layout)[1][-1] == pytest.approx(1 / (1 + 3))
    assert expected[4] > 0  # bought at 51 plus costs, marked at 51.5


def test_split_works_on_batches_of_numpy_arrays_and_torch_tensors() -> None:
    trading = env()
    layout = trading.layout
    batch = np.stack([trading.reset(seed=0)[0]] * 4).reshape(2, 2, layout.size)
    market, portfolio = layout.split(batch)
    assert market.shape == (2, 2, 3, 2, 2) and portfolio.shape == (2, 2, 6)
    tokens, _ = layout.tokens(torch.from_numpy(batch))
    assert tuple(tokens.shape) == (2, 2, 3, 4)  # one token per bar, N * F channels
    with pytest.raises(ValueError, match="layout expects 18"):
        layout.split(np.zeros(5))


def test_observations_are_fresh_arrays() -> None:
    trading = env()
    first, _ = trading.reset(seed=0)
    kept = first.copy()
    trading.step((0, 5))
    np.testing.assert_array_equal(first, kept)  # stepping never rewrites an observation already returned
