"""Tests for rl.evaluation.trades: FIFO round trips by hand, accounting identities, fill statistics."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.data.schema import DataError
from rl.evaluation.metrics import compute_metrics
from rl.evaluation.trades import (
    LEDGER_COLUMNS,
    costs_paid,
    positions_from_ledger,
    round_trips,
    traded_notional,
    unfilled_order_pct,
)

START = datetime(2024, 1, 1, tzinfo=UTC)


def ledger(rows: list[tuple[str, str, float, float, float, str]]) -> pl.DataFrame:
    """Rows of (instrument, side, qty, price, fee, status), one bar apart."""
    return pl.DataFrame(
        {
            "timestamp": [START + timedelta(hours=i) for i in range(len(rows))],
            "bar_index": list(range(len(rows))),
            "instrument": [r[0] for r in rows],
            "side": [r[1] for r in rows],
            "qty": [r[2] for r in rows],
            "price": [r[3] for r in rows],
            "fee": [r[4] for r in rows],
            "slippage": [0.01 * r[2] for r in rows],
            "status": [r[5] for r in rows],
        },
        schema_overrides={"timestamp": pl.Datetime("us", "UTC")},
    )


HAND = ledger(
    [
        ("BTC", "buy", 1.0, 100.0, 0.10, "filled"),
        ("BTC", "sell", 0.5, 110.0, 0.055, "filled"),
        ("BTC", "sell", 1.5, 120.0, 0.18, "filled"),  # closes 0.5 long, opens 1.0 short
        ("BTC", "buy", 1.0, 90.0, 0.09, "filled"),
        ("BTC", "buy", 1.0, 95.0, 0.0, "rejected"),
    ]
)


def test_fifo_round_trips_by_hand() -> None:
    trips = round_trips(HAND)
    assert trips["direction"].to_list() == [1, 1, -1]
    assert trips["qty"].to_list() == [0.5, 0.5, 1.0]
    # long 0.5: (110 - 100) * 0.5 = 5; fees 0.5 * 0.10 + 0.055 = 0.105
    # long 0.5: (120 - 100) * 0.5 = 10; fees 0.5 * 0.10 + 0.5 * 0.12 = 0.11 (0.18 / 1.5 = 0.12 per unit)
    # short 1.0: (120 - 90) * 1.0 = 30; fees 0.12 + 0.09 = 0.21
    np.testing.assert_allclose(trips["gross_pnl"].to_numpy(), [5.0, 10.0, 30.0])
    np.testing.assert_allclose(trips["fees"].to_numpy(), [0.105, 0.11, 0.21])
    np.testing.assert_allclose(trips["net_pnl"].to_numpy(), [4.895, 9.89, 29.79])
    np.testing.assert_allclose(trips["net_return"].to_numpy(), [4.895 / 50, 9.89 / 50, 29.79 / 120])
    assert trips["entry_bar"].to_list() == [0, 0, 2] and trips["exit_bar"].to_list() == [1, 2, 3]


def test_ledger_statistics_by_hand() -> None:
    assert unfilled_order_pct(HAND) == pytest.approx(20.0)
    assert traded_notional(HAND) == pytest.approx(100 + 55 + 180 + 90)
    assert costs_paid(HAND) == pytest.approx((0.425, 0.04))
    np.testing.assert_allclose(positions_from_ledger(HAND, 6), [1.0, 0.5, -1.0, 0.0, 0.0, 0.0])


def test_compute_metrics_reads_the_ledger() -> None:
    equity = [1000.0, 1004.9, 1014.8, 1044.6, 1044.6, 1044.6]
    stamps = np.datetime64("2024-01-01T00:00", "us") + np.arange(6) * np.timedelta64(1, "h")  # numpy: UTC
    m = compute_metrics(equity, "1h", timestamps=stamps, ledger=HAND)
    assert m["n_trades"] == 3 and m["win_rate"] == 1.0 and math.isinf(m["profit_factor"])
    assert m["avg_trade_return"] == pytest.approx((4.895 / 50 + 9.89 / 50 + 29.79 / 120) / 3)
    assert m["exposure"] == pytest.approx(3 / 6)
    assert m["turnover"] == pytest.approx(425 / np.mean(equity))
    assert m["unfilled_order_pct"] == pytest.approx(20.0)


def test_instruments_are_matched_separately() -> None:
    trips = round_trips(
        ledger(
            [
                ("BTC", "buy", 1.0, 100.0, 0.0, "filled"),
                ("ETH", "sell", 2.0, 10.0, 0.0, "filled"),
                ("BTC", "sell", 1.0, 90.0, 0.0, "filled"),
                ("ETH", "buy", 2.0, 8.0, 0.0, "filled"),
            ]
        )
    )
    assert trips["instrument"].to_list() == ["BTC", "ETH"]
    np.testing.assert_allclose(trips["net_pnl"].to_numpy(), [-10.0, 4.0])


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (HAND.drop("fee"), "lacks column"),
        (HAND.with_columns(pl.lit("hold").alias("side")), "side not buy/sell"),
        (HAND.with_columns(pl.lit(0.0).alias("qty")), "non-positive qty"),
    ],
)
def test_bad_ledgers_raise(frame: pl.DataFrame, message: str) -> None:
    with pytest.raises(DataError, match=message):
        round_trips(frame)


def test_empty_ledger_has_no_trades() -> None:
    empty = HAND.clear()
    assert round_trips(empty).height == 0
    assert math.isnan(unfilled_order_pct(empty))
    assert list(HAND.columns) == list(LEDGER_COLUMNS)


fills = st.lists(
    st.tuples(st.sampled_from(["buy", "sell"]), st.integers(1, 5), st.integers(50, 150), st.integers(0, 3)),
    min_size=1,
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(fills)
def test_round_trips_account_for_all_cash_of_a_flat_ledger(rows: list[tuple[str, int, int, int]]) -> None:
    """Close the position at the end; then round-trip net P&L = cash flow of all fills minus all fees."""
    position = sum(q if side == "buy" else -q for side, q, _, _ in rows)
    if position:
        rows = [*rows, ("sell" if position > 0 else "buy", abs(position), 100, 0)]
    frame = ledger([("BTC", side, float(q), float(p), float(f) / 10, "filled") for side, q, p, f in rows])
    cash = sum((p if side == "sell" else -p) * q for side, q, p, _ in rows) - frame["fee"].sum()
    trips = round_trips(frame)
    assert trips["net_pnl"].sum() == pytest.approx(cash, abs=1e-9)
    assert trips["fees"].sum() == pytest.approx(frame["fee"].sum(), abs=1e-9)
    assert trips["qty"].sum() * 2 == pytest.approx(frame["qty"].sum(), abs=1e-9)
