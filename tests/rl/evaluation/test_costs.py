"""Tests for rl.evaluation.costs: grid, break-even fee by interpolation and bisection, cost shares."""

from __future__ import annotations

import math

import numpy as np
import pytest

from features.data.schema import DataError
from features.data.synthetic import GeometricBrownianMotion
from rl.evaluation.costs import (
    DEFAULT_FEES,
    break_even_fee,
    break_even_from_grid,
    cost_breakdown,
    cost_grid,
    ledger_cost_breakdown,
)
from rl.evaluation.metrics import compute_metrics
from tests.rl.evaluation.toy import sma_backtest


def linear_run(fee: float, slippage_bps: float) -> dict[str, float]:
    """20 one-way trades: each costs the fee plus the slippage, from a 5% gross return."""
    return {"total_return": 0.05 - 20 * fee - 20 * slippage_bps / 10_000, "sharpe": 1.0 - 100 * fee}


def test_grid_has_every_pair_and_the_run_values() -> None:
    table = cost_grid(linear_run, slippages_bps=(0.0, 5.0), metrics=("total_return", "sharpe", "calmar"))
    assert len(table) == 2 * len(DEFAULT_FEES)
    assert list(table.columns) == ["fee", "slippage_bps", "total_return", "sharpe", "calmar"]
    row = table[(table.fee == 0.003) & (table.slippage_bps == 5.0)].iloc[0]
    assert row.total_return == pytest.approx(0.05 - 0.06 - 0.01)
    assert math.isnan(row.calmar)


def test_break_even_of_a_linear_cost_is_exact() -> None:
    table = cost_grid(linear_run, slippages_bps=(0.0, 5.0, 25.0))
    # 0.05 - 20 f = 0 -> f = 0.0025; with 5 bps: 0.05 - 0.01 - 20 f = 0 -> f = 0.002
    assert break_even_from_grid(table, "total_return", 0.0) == pytest.approx(0.0025)
    assert break_even_from_grid(table, "total_return", 5.0) == pytest.approx(0.002)
    assert break_even_from_grid(table, "total_return", 25.0) == pytest.approx(0.001)  # <= 0 at the lowest fee
    assert break_even_fee(linear_run, "total_return", 0.0) == pytest.approx(0.0025, abs=1e-6)
    assert break_even_fee(linear_run, "sharpe", high=0.02) == pytest.approx(0.01, abs=1e-6)  # 1 - 100 f = 0
    assert break_even_fee(linear_run, "total_return", 0.0, high=0.002) is None  # still positive at high
    with pytest.raises(DataError, match="no rows"):
        break_even_from_grid(table, "total_return", 7.0)


def test_break_even_of_a_real_backtest_by_bisection_and_grid() -> None:
    bars = GeometricBrownianMotion(drift=3.0, volatility=0.4).simulate(24 * 60, "1h", seed=3)

    def run(fee: float, slippage_bps: float) -> dict[str, float]:
        result = sma_backtest(bars, 48, fee, slippage_bps)
        return compute_metrics(result.equity, "1h", ledger=result.ledger)

    assert run(0.0, 0.0)["total_return"] > 0
    fee = break_even_fee(run, "total_return", 0.0, high=0.05, tolerance=1e-7)
    assert fee is not None
    assert run(fee - 1e-5, 0.0)["total_return"] > 0 > run(fee + 1e-5, 0.0)["total_return"]
    grid = cost_grid(run, fees=np.linspace(0.0, 0.01, 11).tolist(), slippages_bps=(0.0,))
    assert break_even_from_grid(grid) == pytest.approx(fee, abs=2e-4)


def test_cost_breakdown_by_hand() -> None:
    shares = cost_breakdown(net_pnl=60.0, fees_paid=30.0, slippage_paid=10.0)
    assert shares["gross_pnl"] == 100.0
    assert (shares["fee_share_of_gross"], shares["slippage_share_of_gross"]) == pytest.approx((0.3, 0.1))
    assert shares["cost_share_of_gross"] == pytest.approx(0.4)
    assert math.isnan(cost_breakdown(-50.0, 30.0)["fee_share_of_gross"])


def test_ledger_cost_breakdown_matches_the_backtest() -> None:
    bars = GeometricBrownianMotion(drift=1.0, volatility=0.5).simulate(24 * 20, "1h", seed=4)
    result = sma_backtest(bars, 24, fee=0.002, slippage_bps=10)
    shares = ledger_cost_breakdown(result.ledger, float(result.equity.iloc[0]), float(result.equity.iloc[-1]))
    assert shares["fees_paid"] == pytest.approx(result.ledger["fee"].sum())
    assert shares["slippage_paid"] == pytest.approx(result.ledger["slippage"].sum())
    assert shares["gross_pnl"] == pytest.approx(
        result.equity.iloc[-1] - result.equity.iloc[0] + shares["fees_paid"] + shares["slippage_paid"]
    )
