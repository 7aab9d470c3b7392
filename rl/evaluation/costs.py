"""Transaction cost analysis: how much do fees and slippage decide the result?

The helpers take a backtest as a callable ``run(fee, slippage_bps) -> metrics``
(``fee`` a fraction of traded notional, 0.001 = 0.1%; slippage in basis points)
so they do not care which environment or agent produced the metrics.

* :func:`cost_grid` runs every (fee, slippage) pair and tabulates chosen metrics;
* :func:`break_even_from_grid` interpolates linearly between the grid's fees,
  :func:`break_even_fee` bisects with extra runs: the fee at which a metric
  (total or annual return) crosses zero, assuming it falls as fees rise;
* :func:`cost_breakdown` expresses fees and slippage paid as shares of the gross
  profit, the P&L before costs: ``gross = net + fees + slippage``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import polars as pl

from features.data.schema import DataError
from rl.evaluation.trades import costs_paid

RunFn = Callable[[float, float], Mapping[str, float]]
DEFAULT_FEES: tuple[float, ...] = (0.001, 0.002, 0.003, 0.004, 0.005)
DEFAULT_SLIPPAGES_BPS: tuple[float, ...] = (0.0, 5.0, 10.0, 25.0)
DEFAULT_GRID_METRICS: tuple[str, ...] = (
    "total_return",
    "annual_return",
    "sharpe",
    "max_drawdown",
    "n_trades",
)


def cost_grid(
    run: RunFn,
    fees: Sequence[float] = DEFAULT_FEES,
    slippages_bps: Sequence[float] = DEFAULT_SLIPPAGES_BPS,
    metrics: Sequence[str] = DEFAULT_GRID_METRICS,
) -> pd.DataFrame:
    """One row per (fee, slippage_bps) with the chosen metrics of ``run``; missing metrics are NaN."""
    rows = []
    for slippage in slippages_bps:
        for fee in fees:
            result = run(fee, slippage)
            rows.append(
                {"fee": fee, "slippage_bps": slippage, **{m: float(result.get(m, np.nan)) for m in metrics}}
            )
    return pd.DataFrame(rows)


def break_even_from_grid(
    table: pd.DataFrame, metric: str = "total_return", slippage_bps: float = 0.0
) -> float | None:
    """Fee where ``metric`` first crosses zero on the grid rows at ``slippage_bps``, linearly interpolated.

    Returns the lowest fee if the metric is already <= 0 there, None if it stays positive over the grid.
    """
    rows = table[table["slippage_bps"] == slippage_bps].sort_values("fee")
    if rows.empty:
        raise DataError(f"cost grid has no rows at slippage {slippage_bps} bps")
    fees, values = rows["fee"].to_numpy(float), rows[metric].to_numpy(float)
    if values[0] <= 0:
        return float(fees[0])
    for i in range(1, len(fees)):
        if values[i] <= 0:
            share = values[i - 1] / (values[i - 1] - values[i])
            return float(fees[i - 1] + share * (fees[i] - fees[i - 1]))
    return None


def break_even_fee(
    run: RunFn,
    metric: str = "total_return",
    slippage_bps: float = 0.0,
    *,
    low: float = 0.0,
    high: float = 0.01,
    tolerance: float = 1e-6,
    max_runs: int = 60,
) -> float | None:
    """Fee in [low, high] where ``metric`` of ``run`` crosses zero, by bisection.

    None when the metric does not change sign over the bracket (it is <= 0 even
    at ``low``, or still > 0 at ``high``): inspect both ends then.
    """

    def value(fee: float) -> float:
        return float(run(fee, slippage_bps)[metric])

    low_value, high_value = value(low), value(high)
    if not (low_value > 0 >= high_value):
        return None
    for _ in range(max_runs):
        if high - low <= tolerance:
            break
        middle = (low + high) / 2
        if value(middle) > 0:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def cost_breakdown(net_pnl: float, fees_paid: float, slippage_paid: float = 0.0) -> dict[str, float]:
    """Fees and slippage as shares of the gross (pre-cost) P&L; shares are NaN when gross P&L <= 0."""
    gross = net_pnl + fees_paid + slippage_paid

    def share(cost: float) -> float:
        return cost / gross if gross > 0 else math.nan

    return {
        "net_pnl": net_pnl,
        "gross_pnl": gross,
        "fees_paid": fees_paid,
        "slippage_paid": slippage_paid,
        "fee_share_of_gross": share(fees_paid),
        "slippage_share_of_gross": share(slippage_paid),
        "cost_share_of_gross": share(fees_paid + slippage_paid),
    }


def ledger_cost_breakdown(ledger: pl.DataFrame, start_equity: float, end_equity: float) -> dict[str, float]:
    """:func:`cost_breakdown` from a fills ledger and the equity at the start and end of the backtest."""
    fees, slippage = costs_paid(ledger)
    return cost_breakdown(end_equity - start_equity, fees, slippage)
