"""Scenario tables for target weights and for deltas on a base allocation."""

from __future__ import annotations

import numpy as np
import pytest

from envs import FeeSchedule, SchemeSpec, TradingEnv
from features.data.schema import DataError
from tests.envs.helpers import bar_panel, costs
from tests.envs.scenario import (
    BINANCE_BARS,
    BITSTAMP_BARS,
    CASH,
    SINGLE_BARS,
    SLIP,
    TAKER,
    Fill,
    Step,
    check,
    make,
)  # fmt: skip

BTC, BITSTAMP = "binance:BTC/USDT", "bitstamp:BTC/USD"
SAFETY = 1.0 - 1e-12


def action(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def test_target_weights_rebalance_sells_first_and_cuts_the_buy_to_the_cash() -> None:
    panel = bar_panel({BTC: BINANCE_BARS, BITSTAMP: BITSTAMP_BARS})
    fees = {"binance": FeeSchedule(0.0005, 0.001), "bitstamp": FeeSchedule(0.0025, 0.005)}
    env = make(panel, costs=costs(fees=fees), action=SchemeSpec("weights"))
    # Bar 1: scores (1, 1, cash 0) -> 50% / 50%; bar 2 opens below bar 1's close, so both buys fit.
    qa, qb = 0.5 * CASH / 101.0, 0.5 * CASH / 50.5
    pa, pb = 100.5 * (1 + SLIP), 50.25 * (1 + SLIP)
    fee_a, fee_b = qa * pa * 0.001, qb * pb * 0.005
    cash1 = CASH - qa * pa - fee_a - qb * pb - fee_b
    nw2 = cash1 + qa * 102.0 + qb * 51.0
    # Bar 2: scores (0, 1, 0) -> 0% / 100%: sell all of A first, then buy B with what the cash pays for.
    pa2, pb2 = 102.0 * (1 - SLIP), 51.0 * (1 + SLIP)
    fee_a2 = qa * pa2 * 0.001
    cash_mid = cash1 + qa * pa2 - fee_a2
    wanted = (nw2 - qb * 51.0) / 51.0
    qb2 = cash_mid / (pb2 * 1.005) * SAFETY
    assert qb2 < wanted  # the buy is cut to the cash
    fee_b2 = qb2 * pb2 * 0.005
    cash2 = cash_mid - qb2 * pb2 - fee_b2
    held = qb + qb2
    # Bar 3: scores (-1, -1, cash 1) -> all cash.
    pb3 = 51.5 * (1 - SLIP)
    fee_b3 = held * pb3 * 0.005
    cash3 = cash2 + held * pb3 - fee_b3
    steps = [
        Step(cash1, [qa, qb], nw2, placed=2, filled=2, fees=fee_a + fee_b),
        Step(cash2, [0.0, held], cash2 + held * 51.5, placed=2, filled=2, fees=fee_a2 + fee_b2),
        Step(cash3, [0.0, 0.0], cash3, placed=1, filled=1, fees=fee_b3),
        Step(cash3, [0.0, 0.0], cash3),
    ]
    fills = [
        Fill(1, "buy", qa, pa, fee_a, qa * 100.5 * SLIP),
        Fill(1, "buy", qb, pb, fee_b, qb * 50.25 * SLIP, instrument=BITSTAMP),
        Fill(2, "sell", qa, pa2, fee_a2, qa * 102.0 * SLIP),
        Fill(2, "buy", qb2, pb2, fee_b2, qb2 * 51.0 * SLIP, instrument=BITSTAMP),
        Fill(3, "sell", held, pb3, fee_b3, held * 51.5 * SLIP, instrument=BITSTAMP),
    ]
    all_cash = action(-1, -1, 1)
    infos = check(env, [action(1, 1, 0), action(0, 1, 0), all_cash, all_cash], steps, fills)
    assert 0.0 <= infos[2]["cash"] < 1e-6
    assert env.ledger.to_frame()["requested_quantity"][3] == pytest.approx(wanted, rel=1e-12)


def test_deltas_adjust_a_base_allocation_that_can_be_replaced_at_run_time() -> None:
    scheme = SchemeSpec("deltas", {"base_weights": [0.5, 0.5], "max_delta": 0.2})
    env = make(bar_panel({BTC: SINGLE_BARS}), costs=costs(), action=scheme)
    # Bar 1: +1 -> 0.5 + 0.2 = 70% of net worth.
    q1 = 0.7 * CASH / 101.0
    p1 = 102.0 * (1 + SLIP)
    fee1 = q1 * p1 * TAKER
    cash1 = CASH - q1 * p1 - fee1
    nw2 = cash1 + q1 * 103.0
    # Bar 2: -0.5 -> 0.5 - 0.1 = 40%.
    q2 = (0.4 * nw2 - q1 * 103.0) / 103.0
    assert q2 < 0
    p2 = 103.0 * (1 - SLIP)
    fee2 = -q2 * p2 * TAKER
    cash2 = cash1 - q2 * p2 - fee2
    held = q1 + q2
    # Bar 3: the base becomes all cash and the delta is 0 -> sell everything.
    p3 = 104.0 * (1 - SLIP)
    fee3 = held * p3 * TAKER
    cash3 = cash2 + held * p3 - fee3
    steps = [
        Step(cash1, [q1], nw2, placed=1, filled=1, fees=fee1),
        Step(cash2, [held], cash2 + held * 104.0, placed=1, filled=1, fees=fee2),
        Step(cash3, [0.0], cash3, placed=1, filled=1, fees=fee3),
    ]
    fills = [
        Fill(1, "buy", q1, p1, fee1, q1 * 102.0 * SLIP),
        Fill(2, "sell", -q2, p2, fee2, -q2 * 103.0 * SLIP),
        Fill(3, "sell", held, p3, fee3, held * 104.0 * SLIP),
    ]
    actions = [action(1.0), action(-0.5), _all_cash_base_then_hold]
    check(env, actions, steps, fills)


def _all_cash_base_then_hold(env: TradingEnv) -> np.ndarray:
    env.set_base_weights([0.0, 1.0])
    return action(0.0)


def test_deltas_without_a_base_change_the_current_weights() -> None:
    env = make(bar_panel({BTC: SINGLE_BARS}), costs=costs(), action=SchemeSpec("deltas", {"max_delta": 0.2}))
    env.reset(seed=0)
    _, _, _, _, info = env.step(action(0.5))  # flat + 0.5 * 0.2 -> 10% of net worth
    assert info["positions"][0] == pytest.approx(0.1 * CASH / 101.0, rel=1e-12)
    _, _, _, _, info = env.step(action(-1.0))  # about 10% - 20% -> clipped at flat (long only)
    assert info["positions"][0] == 0.0


def test_base_weights_must_sum_to_one_and_fit_the_instruments() -> None:
    with pytest.raises(DataError, match=r"sum to 0\.9"):
        make(bar_panel({BTC: SINGLE_BARS}), action=SchemeSpec("deltas", {"base_weights": [0.5, 0.4]}))
    with pytest.raises(DataError, match="need 2 values"):
        make(bar_panel({BTC: SINGLE_BARS}), action=SchemeSpec("deltas", {"base_weights": [0.5, 0.25, 0.25]}))
    env = make(bar_panel({BTC: SINGLE_BARS}), action=SchemeSpec("deltas"))
    with pytest.raises(DataError, match="allow_short is off"):
        env.set_base_weights([-0.5, 1.5])
    with pytest.raises(DataError, match="no base allocation"):
        make(bar_panel({BTC: SINGLE_BARS}), action=SchemeSpec("weights")).set_base_weights([0.5, 0.5])
