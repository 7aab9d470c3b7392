"""The same coin on two exchanges is two instruments, each with its own prices and fees."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.spaces import Discrete

from envs import EnvConfig, FeeSchedule, SchemeSpec, TradingEnv
from tests.envs.helpers import bar_panel, costs
from tests.envs.scenario import SINGLE_BARS

FEES = {"binance": FeeSchedule(maker=0.0002, taker=0.001), "bitstamp": FeeSchedule(maker=0.003, taker=0.005)}


def two_venues() -> TradingEnv:
    panel = bar_panel({"binance:BTC/USDT": SINGLE_BARS, "bitstamp:BTC/USD": SINGLE_BARS})
    return TradingEnv(panel, EnvConfig(window=2, mode="eval", costs=costs(fees=FEES, slippage_bps=0.0),
                                       action=SchemeSpec("weights")))


def test_equal_trades_on_two_venues_pay_each_venues_fee() -> None:
    env = two_venues()
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([0.25, 0.25, 0.5], dtype=np.float32))  # 25% on each venue
    ledger = env.ledger.to_frame()
    assert ledger["exchange"].to_list() == ["binance", "bitstamp"]
    assert ledger["notional"][0] == pytest.approx(ledger["notional"][1], rel=1e-12)
    assert ledger["fee"][1] == pytest.approx(5 * ledger["fee"][0], rel=1e-12)  # 0.5% against 0.1%
    assert info["fees_paid"] == pytest.approx(0.006 * ledger["notional"][0], rel=1e-12)


def test_instruments_can_be_chosen_and_ordered_by_name() -> None:
    panel = bar_panel({"binance:BTC/USDT": SINGLE_BARS, "bitstamp:BTC/USD": SINGLE_BARS})
    env = TradingEnv(panel, EnvConfig(window=2, mode="eval", instruments=("bitstamp:BTC/USD", "binance:BTC/USDT")))
    assert env.instruments == ("bitstamp:BTC/USD", "binance:BTC/USDT")
    assert env.full_market.taker == [0.001, 0.001]  # both on the default schedule here
    only = TradingEnv(panel, EnvConfig(window=2, mode="eval", costs=costs(fees=FEES),
                                       instruments=("bitstamp:BTC/USD",)))
    assert only.full_market.taker == [0.005] and only.action_space == Discrete(3)
