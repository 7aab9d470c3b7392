"""Scenario tables for the discrete schemes: all in / all out, sized trades, instrument x size."""

from __future__ import annotations

import pytest

from envs import FeeSchedule, SchemeSpec
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

BTC = "binance:BTC/USDT"


def test_all_in_all_out_buys_with_every_unit_of_cash_and_sells_flat() -> None:
    env = make(bar_panel({BTC: SINGLE_BARS}), costs=costs(), action=SchemeSpec("discrete"))
    # Bar 1: buy all in -> fills at bar 2's open 102 plus 10 bps, sized so price plus fee spends the cash.
    buy = 102.0 * (1 + SLIP)
    units = CASH / (buy * (1 + TAKER))
    buy_fee = units * buy * TAKER
    cash = CASH - units * buy - buy_fee  # zero up to the 1e-12 safety margin
    # Bar 2: buy again -> the cash left is below the 10 USDT minimum, nothing is placed.
    # Bar 3: sell all out -> fills at bar 4's open 104 less 10 bps.
    sell = 104.0 * (1 - SLIP)
    sell_fee = units * sell * TAKER
    after = cash + units * sell - sell_fee
    steps = [
        Step(cash, [units], cash + units * 103.0, placed=1, filled=1, fees=buy_fee,
             extra={"slippage_paid": units * 102.0 * SLIP}),
        Step(cash, [units], cash + units * 104.0),
        Step(after, [0.0], after, placed=1, filled=1, fees=sell_fee),
        Step(after, [0.0], after),  # sell while flat: nothing to sell, no order
        Step(after, [0.0], after),
        Step(after, [0.0], after),
    ]
    fills = [
        Fill(1, "buy", units, buy, buy_fee, units * 102.0 * SLIP),
        Fill(3, "sell", units, sell, sell_fee, units * 104.0 * SLIP),
    ]
    infos = check(env, [1, 1, 2, 2, 0, 0], steps, fills)
    assert 0.0 <= infos[1]["cash"] < 1e-6  # all in leaves no negative cash
    assert env.ledger.to_frame()["liquidity"].to_list() == ["taker", "taker"]


def test_sized_trades_use_fractions_of_net_worth_and_never_sell_below_flat() -> None:
    env = make(bar_panel({BTC: SINGLE_BARS}), costs=costs(), action=SchemeSpec("sized"))
    buy_10, sell_5, sell_40 = 1 + 3, 1 + 7 + 2, 1 + 7 + 6
    q1 = 0.10 * CASH / 101.0  # sized at the decision close
    p1 = 102.0 * (1 + SLIP)
    fee1 = q1 * p1 * TAKER
    cash1 = CASH - q1 * p1 - fee1
    nw3 = cash1 + q1 * 104.0
    q2 = 0.05 * nw3 / 104.0
    p2 = 104.0 * (1 - SLIP)
    fee2 = q2 * p2 * TAKER
    cash2 = cash1 + q2 * p2 - fee2
    held = q1 - q2
    nw4 = cash2 + held * 105.0
    assert 0.40 * nw4 / 105.0 > held  # so the 40% sell is cut to the holding
    p3 = 106.0 * (1 - SLIP)
    fee3 = held * p3 * TAKER
    cash3 = cash2 + held * p3 - fee3
    steps = [
        Step(cash1, [q1], cash1 + q1 * 103.0, placed=1, filled=1, fees=fee1),
        Step(cash1, [q1], nw3),
        Step(cash2, [held], nw4, placed=1, filled=1, fees=fee2),
        Step(cash3, [0.0], cash3, placed=1, filled=1, fees=fee3),
        Step(cash3, [0.0], cash3),
        Step(cash3, [0.0], cash3),
    ]
    fills = [
        Fill(1, "buy", q1, p1, fee1, q1 * 102.0 * SLIP),
        Fill(3, "sell", q2, p2, fee2, q2 * 104.0 * SLIP),
        Fill(4, "sell", held, p3, fee3, held * 106.0 * SLIP),
    ]
    check(env, [buy_10, 0, sell_5, sell_40, 0, 0], steps, fills)


def test_instrument_by_size_trades_two_venues_with_their_own_fees() -> None:
    panel = bar_panel({BTC: BINANCE_BARS, "bitstamp:BTC/USD": BITSTAMP_BARS})
    fees = {"binance": FeeSchedule(0.0005, 0.001), "bitstamp": FeeSchedule(0.0025, 0.005)}
    env = make(panel, costs=costs(fees=fees), action=SchemeSpec("multi_discrete"))
    buy_20, sell_20 = 1 + 4, 1 + 7 + 4
    qa = 0.2 * CASH / 101.0
    pa = 100.5 * (1 + SLIP)
    fee_a = qa * pa * 0.001
    cash1 = CASH - qa * pa - fee_a
    nw2 = cash1 + qa * 102.0
    qb = 0.2 * nw2 / 51.0
    pb = 51.0 * (1 + SLIP)
    fee_b = qb * pb * 0.005  # bitstamp's taker fee
    cash2 = cash1 - qb * pb - fee_b
    nw3 = cash2 + qa * 103.0 + qb * 51.5
    qs = min(0.2 * nw3 / 51.5, qb)
    ps = 51.5 * (1 - SLIP)
    fee_s = qs * ps * 0.005
    cash3 = cash2 + qs * ps - fee_s
    steps = [
        Step(cash1, [qa, 0.0], nw2, placed=1, filled=1, fees=fee_a),
        Step(cash2, [qa, qb], nw3, placed=1, filled=1, fees=fee_b),
        Step(cash3, [qa, qb - qs], cash3 + qa * 104.0 + (qb - qs) * 52.0, placed=1, filled=1, fees=fee_s),
        Step(cash3, [qa, qb - qs], cash3 + qa * 105.0 + (qb - qs) * 52.5),
    ]
    fills = [
        Fill(1, "buy", qa, pa, fee_a, qa * 100.5 * SLIP),
        Fill(2, "buy", qb, pb, fee_b, qb * 51.0 * SLIP, instrument="bitstamp:BTC/USD"),
        Fill(3, "sell", qs, ps, fee_s, qs * 51.5 * SLIP, instrument="bitstamp:BTC/USD"),
    ]
    check(env, [(0, buy_20), (1, buy_20), (1, sell_20), (0, 0)], steps, fills)
    assert env.ledger.to_frame()["exchange"].to_list() == ["binance", "bitstamp", "bitstamp"]


def test_shorts_are_sized_to_the_leverage_limit_and_a_loss_ends_the_episode() -> None:
    env = make(bar_panel({BTC: SINGLE_BARS}), costs=costs(), action=SchemeSpec("discrete"), allow_short=True,
               min_net_worth=0.95)
    env.reset(seed=0)
    # Bar 1: sell all in short -> fills at 102 less 10 bps; the short may reach net worth at bar 2's open,
    # counting the fill's own costs: units * 102 <= 10,000 - units * (102 - price + fee per unit).
    price = 102.0 * (1 - SLIP)
    unit_cost = (102.0 - price) + TAKER * price
    units = CASH / (102.0 + unit_cost)
    fee = units * price * TAKER
    _, _, terminated, _, info = env.step(2)
    assert info["positions"][0] == pytest.approx(-units, rel=1e-9)
    assert info["cash"] == pytest.approx(CASH + units * price - fee, rel=1e-12)
    assert not terminated
    # The price keeps rising: net worth at the closes of bars 2..5 is cash - units * close, about
    # 9,882, 9,784, 9,686 and 9,490 - the first below 95% of the initial cash, which ends the episode.
    cash = CASH + units * price - fee
    worth = [cash - units * close for close in (103.0, 104.0, 105.0, 107.0)]
    assert info["net_worth"] == pytest.approx(worth[0], rel=1e-9)
    for expected in worth[1:]:
        _, _, terminated, truncated, info = env.step(0)
        assert info["net_worth"] == pytest.approx(expected, rel=1e-9)
    assert terminated and not truncated and worth[2] > 0.95 * CASH >= worth[3]
    with pytest.raises(RuntimeError):
        env.step(0)
