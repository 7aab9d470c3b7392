"""Scenario tables for limit orders: fills, misses, fills at a gapped open, resting, expiry, replacement."""

from __future__ import annotations

from typing import Any

import numpy as np

from envs import SchemeSpec, TradingEnv
from tests.envs.helpers import bar_panel, costs
from tests.envs.scenario import CASH, MAKER, SINGLE_BARS, Fill, Step, check, make

BTC = "binance:BTC/USDT"


def action(size: float, offset: float) -> np.ndarray:
    """Size and offset are chosen exactly representable in float32 so prices are exact."""
    return np.array([size, offset], dtype=np.float32)


def limit_env(**params: Any) -> TradingEnv:
    spec = SchemeSpec("limit", {"max_offset": 0.02, "deadband": 0.1, **params})
    return make(bar_panel({BTC: SINGLE_BARS}), costs=costs(), action=spec)


def test_limit_orders_fill_only_when_the_next_bar_reaches_them() -> None:
    env = limit_env(ttl_bars=1)
    # Bar 1 (close 101): buy half, offset (0 + 1) / 2 * 2% = 1% -> limit 99.99; bar 2's low is 101: expires.
    missed = 0.5 * CASH / 101.0
    # Bar 2 (close 103): offset 0 -> limit 103; bar 3 opens at 103 and trades down to 100: fills at 103, maker.
    q = 0.5 * CASH / 103.0
    fee = q * 103.0 * MAKER
    cash = CASH - q * 103.0 - fee
    # Bar 3 (close 104): sell all at 104 * 1.02 = 106.08; bar 4's high is 106: expires.
    # Bar 4 (close 105): offset 0.125 * 2% -> 105.2625; bar 5 gaps open at 106, above it: fills at the open.
    sell_fee = q * 106.0 * MAKER
    after = cash + q * 106.0 - sell_fee
    steps = [
        Step(CASH, [0.0], CASH, placed=1, unfilled=1),
        Step(cash, [q], cash + q * 104.0, placed=1, filled=1, fees=fee),
        Step(cash, [q], cash + q * 105.0, placed=1, unfilled=1),
        Step(after, [0.0], after, placed=1, filled=1, fees=sell_fee),
        Step(after, [0.0], after),  # |0.05| is inside the deadband: no order
        Step(after, [0.0], after),
    ]
    fills = [
        Fill(1, "buy", missed, status="expired"),
        Fill(2, "buy", q, 103.0, fee),
        Fill(3, "sell", q, status="expired"),
        Fill(4, "sell", q, 106.0, sell_fee),
    ]
    actions = [action(0.5, 0.0), action(0.5, -1.0), action(-1.0, 1.0), action(-1.0, -0.75),
               action(0.05, 0.0), action(0.0, 0.0)]
    check(env, actions, steps, fills)
    ledger = env.ledger.to_frame()
    assert ledger["limit_price"].to_list() == [101.0 * 0.99, 103.0, 104.0 * 1.02, 105.0 * 1.0025]
    assert ledger["requested_quantity"][0] == missed
    assert ledger["liquidity"].to_list() == ["", "maker", "", "maker"]
    assert ledger["reason"][0] == "limit price not reached"


def test_resting_orders_fill_on_a_later_bar_or_end_with_the_episode() -> None:
    env = limit_env(ttl_bars=3)
    # Bar 1: buy half at 101 * 0.995 = 100.495, resting to bar 4; bar 2's low is 101, bar 3's 100: fills on bar 3.
    q = 0.5 * CASH / 101.0
    fee = q * 100.495 * MAKER
    cash = CASH - q * 100.495 - fee
    nw3 = cash + q * 104.0
    # Bar 3: sell half of net worth at 104 * 1.02 = 106.08; bar 4's high 106 misses, bar 5's 108 fills at 106.08.
    s = min(0.5 * nw3 / 104.0, q)
    sell_fee = s * 106.08 * MAKER
    after = cash + s * 106.08 - sell_fee
    held = q - s
    # Bar 5: buy half at 107 * 0.98 = 104.86; bars 6 and 7 stay above it and the episode ends at bar 7.
    nw5 = after + held * 107.0
    steps = [
        Step(CASH, [0.0], CASH, placed=1),
        Step(cash, [q], cash + q * 104.0, filled=1, fees=fee),
        Step(cash, [q], cash + q * 105.0, placed=1),
        Step(after, [held], nw5, filled=1, fees=sell_fee),
        Step(after, [held], after + held * 108.0, placed=1),
        Step(after, [held], after + held * 109.0, unfilled=1),
    ]
    fills = [
        Fill(1, "buy", q, 100.495, fee, fill_bar=3),
        Fill(3, "sell", s, 106.08, sell_fee, fill_bar=5),
        Fill(5, "buy", 0.5 * nw5 / 107.0, status="expired"),
    ]
    hold = action(0.0, 0.0)
    check(env, [action(0.5, -0.5), hold, action(-0.5, 1.0), hold, action(0.5, 1.0), hold], steps, fills)
    assert env.ledger.to_frame()["reason"][2] == "episode ended"


def test_a_new_order_replaces_the_resting_one_and_unreached_orders_expire() -> None:
    env = limit_env(ttl_bars=2)
    # Bar 1: buy half at 101 * 0.98 = 98.98 (rests to bar 3).  Bar 2: a quarter at 103 * 0.98 = 100.94
    # cancels it; bar 3 trades down to 100 and fills the new order at 100.94.
    q = 0.25 * CASH / 103.0
    fee = q * 100.94 * MAKER
    cash = CASH - q * 100.94 - fee
    nw3 = cash + q * 104.0
    # Bar 3: buy half at 104 * 0.98 = 101.92 (rests to bar 5); lows of 102 and 104 never reach it.
    steps = [
        Step(CASH, [0.0], CASH, placed=1),
        Step(cash, [q], nw3, placed=1, filled=1, unfilled=1, fees=fee),
        Step(cash, [q], cash + q * 105.0, placed=1),
        Step(cash, [q], cash + q * 107.0, unfilled=1),
    ]
    fills = [
        Fill(1, "buy", 0.5 * CASH / 101.0, status="cancelled"),
        Fill(2, "buy", q, 100.94, fee),
        Fill(3, "buy", 0.5 * nw3 / 104.0, status="expired"),
    ]
    hold = action(0.0, 0.0)
    check(env, [action(0.5, 1.0), action(0.25, 1.0), action(0.5, 1.0), hold], steps[:4], fills)
    ledger = env.ledger.to_frame()
    assert ledger["reason"].to_list() == ["replaced by a new order", "", "limit price not reached"]
    assert ledger["expiry_bar"].to_list() == [3, 4, 5]
