"""Performance metrics of an equity curve, annualised for 24/7 crypto bars.

Conventions (docs/evaluation.md has the full list):

* returns are simple per-bar returns ``r_i = E_i / E_{i-1} - 1`` of the equity curve;
* a year is 365 days of 24 hours: ``bars_per_year(timeframe)`` (8760 for '1h');
* Sharpe = mean(r) / std(r, ddof=1) * sqrt(bars_per_year), risk-free rate 0;
* Sortino = mean(r) / sqrt(mean(min(r, 0)^2)) * sqrt(bars_per_year) (downside
  deviation with target 0 over ALL bars, as QuantStats and Sortino & Price);
* CAGR = (E_last / E_first)^(1 / years) - 1 with years the elapsed calendar time
  from the first to the last equity timestamp over 365 days (without timestamps:
  number of returns / bars_per_year; both agree on a gapless curve);
* drawdowns are negative fractions (-0.25 = 25% below the running peak), Calmar
  = CAGR / |max drawdown|; ratios with a zero denominator are NaN.

All fractions are plain fractions (0.05 = 5%); only ``unfilled_order_pct`` is in percent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
import polars as pl

from features.data.schema import DataError, bars_per_year, parse_timeframe
from rl.evaluation import trades as ledger_tools
from rl.evaluation.statistics import probabilistic_sharpe_ratio_of, sample_std

EquityLike: TypeAlias = pd.Series | pl.Series | np.ndarray | Sequence[float]
Metrics = dict[str, float]
YEAR = timedelta(days=365)
_MAX_EXP = 700.0


def _utc_index(timestamps: Any) -> pd.DatetimeIndex:
    if isinstance(timestamps, pl.Series):
        timestamps = timestamps.to_pandas()
    if isinstance(timestamps, np.ndarray) and np.issubdtype(timestamps.dtype, np.datetime64):
        return pd.DatetimeIndex(timestamps).tz_localize("UTC")  # numpy datetimes carry no zone: they are UTC
    index = pd.DatetimeIndex(timestamps)
    if index.tz is None:
        raise DataError("equity timestamps are timezone-naive; MFT timestamps are UTC (tz-aware)")
    return index.tz_convert("UTC")


def equity_series(equity: EquityLike, timestamps: Any = None) -> pd.Series:
    """Validated float equity on a UTC DatetimeIndex (a bar-number index without timestamps)."""
    index: pd.Index | None = None
    if isinstance(equity, pd.Series):
        values = equity.to_numpy(dtype=float)
        if isinstance(equity.index, pd.DatetimeIndex):
            index = _utc_index(equity.index)
    elif isinstance(equity, pl.Series):
        values = equity.cast(pl.Float64).to_numpy()
    else:
        values = np.asarray(equity, dtype=float)
    if timestamps is not None:
        index = _utc_index(timestamps)
    if values.ndim != 1 or values.size < 2:
        raise DataError(f"equity curve needs at least 2 points in one dimension, got shape {values.shape}")
    bad = np.flatnonzero(~np.isfinite(values) | (values <= 0))
    if bad.size:
        raise DataError(f"equity must be finite and positive; bad value {values[bad[0]]} at bar {bad[0]}")
    if index is None:
        index = pd.RangeIndex(values.size, name="bar")
    elif len(index) != values.size:
        raise DataError(f"{len(index)} timestamps for {values.size} equity points")
    elif not index.is_monotonic_increasing or index.has_duplicates:
        raise DataError("equity timestamps must be strictly increasing")
    return pd.Series(values, index=index, name="equity")


def simple_returns(equity: pd.Series) -> pd.Series:
    """Per-bar simple returns E_i / E_{i-1} - 1 (one fewer than equity points), on the later bar's index."""
    values = equity.to_numpy(dtype=float)
    return pd.Series(values[1:] / values[:-1] - 1.0, index=equity.index[1:], name="returns")


def years_spanned(equity: pd.Series, timeframe: str) -> float:
    """Calendar years from first to last equity point; bar count / bars_per_year without timestamps."""
    if isinstance(equity.index, pd.DatetimeIndex):
        return float((equity.index[-1] - equity.index[0]) / YEAR)
    return (len(equity) - 1) / bars_per_year(timeframe)


def cagr(total_return: float, years: float) -> float:
    """Compound annual growth rate of a total return over ``years``; -1 for total loss, NaN for no time."""
    if years <= 0:
        return float("nan")
    if total_return <= -1.0:
        return -1.0
    exponent = math.log1p(total_return) / years
    return math.expm1(exponent) if exponent < _MAX_EXP else math.inf  # tiny spans annualise to overflow


def sharpe_ratio(returns: np.ndarray | pd.Series, periods_per_year: float) -> float:
    """Annualised Sharpe ratio with risk-free 0: mean / std(ddof=1) * sqrt(periods)."""
    r = np.asarray(returns, dtype=float)
    std = sample_std(r)
    return float(r.mean() / std * np.sqrt(periods_per_year)) if std > 0 else float("nan")


def downside_deviation(returns: np.ndarray | pd.Series) -> float:
    """sqrt(mean(min(r, 0)^2)): target 0, averaged over every bar (not only losing bars)."""
    r = np.asarray(returns, dtype=float)
    return float(np.sqrt(np.mean(np.minimum(r, 0.0) ** 2)))


def sortino_ratio(returns: np.ndarray | pd.Series, periods_per_year: float) -> float:
    """Annualised Sortino ratio: mean(r) / downside_deviation(r) * sqrt(periods)."""
    r = np.asarray(returns, dtype=float)
    downside = downside_deviation(r)
    return float(r.mean() / downside * np.sqrt(periods_per_year)) if downside > 0 else float("nan")


def drawdown_series(equity: pd.Series) -> pd.Series:
    """E_i / max(E_0..E_i) - 1: zero at new highs, negative under water."""
    values = equity.to_numpy(dtype=float)
    return pd.Series(values / np.maximum.accumulate(values) - 1.0, index=equity.index, name="drawdown")


def max_drawdown(equity: pd.Series) -> float:
    """Deepest drawdown, a fraction <= 0."""
    return float(drawdown_series(equity).min())


def max_drawdown_duration(equity: pd.Series, timeframe: str) -> tuple[int, float]:
    """Longest time under water as (bars, days): from a peak to the last bar still below it.

    Bars are counted from the peak bar; days use the timestamps when present
    (so exchange gaps count as time) and ``bars * bar length`` otherwise.
    """
    values = equity.to_numpy(dtype=float)
    at_peak = values >= np.maximum.accumulate(values)
    peak_index = np.maximum.accumulate(np.where(at_peak, np.arange(values.size), 0))
    under = np.arange(values.size) - peak_index
    if under.max() == 0:
        return 0, 0.0
    end = int(np.argmax(under))
    start = int(peak_index[end])
    if isinstance(equity.index, pd.DatetimeIndex):
        days = (equity.index[end] - equity.index[start]) / timedelta(days=1)
    else:
        days = (end - start) * (parse_timeframe(timeframe) / timedelta(days=1))
    return end - start, float(days)


def rolling_sharpe(returns: pd.Series, window: int, timeframe: str) -> pd.Series:
    """Annualised Sharpe over a trailing window of ``window`` bars (NaN until the window is full)."""
    if window < 2:
        raise DataError(f"rolling Sharpe window must be at least 2 bars, got {window}")
    rolling = returns.rolling(window)
    std = rolling.std(ddof=1)
    return (rolling.mean() / std.where(std > 0) * np.sqrt(bars_per_year(timeframe))).rename("rolling_sharpe")


def return_metrics(equity: pd.Series, timeframe: str) -> Metrics:
    """Metrics that need only the equity curve."""
    returns = simple_returns(equity).to_numpy()
    periods = bars_per_year(timeframe)
    total = float(equity.iloc[-1] / equity.iloc[0] - 1.0)
    years = years_spanned(equity, timeframe)
    annual = cagr(total, years)
    mdd = max_drawdown(equity)
    duration_bars, duration_days = max_drawdown_duration(equity, timeframe)
    return {
        "total_return": total,
        "annual_return": annual,
        "annual_volatility": float(returns.std(ddof=1) * np.sqrt(periods))
        if returns.size > 1
        else float("nan"),
        "sharpe": sharpe_ratio(returns, periods),
        "sortino": sortino_ratio(returns, periods),
        "calmar": annual / abs(mdd) if mdd < 0 else float("nan"),
        "max_drawdown": mdd,
        "max_drawdown_duration": duration_days,
        "max_drawdown_duration_bars": float(duration_bars),
        "psr": probabilistic_sharpe_ratio_of(returns),
        "n_bars": float(len(equity)),
        "years": years,
    }


def trade_metrics(trades: pl.DataFrame | np.ndarray | Sequence[float] | None) -> Metrics:
    """win_rate, profit_factor, avg_trade_return and n_trades of round trips (NaN without trades).

    ``trades`` is a :func:`rl.evaluation.trades.round_trips` frame (profit factor
    from ``net_pnl`` in currency, average from ``net_return``) or an array of
    net trade returns (both from the returns).  A win is a trade with net > 0;
    break-even trades count in the denominator of the win rate.
    """
    if trades is None:
        returns, pnl = np.array([]), np.array([])
    elif isinstance(trades, pl.DataFrame):
        returns, pnl = trades["net_return"].to_numpy(), trades["net_pnl"].to_numpy()
    else:
        returns = np.asarray(trades, dtype=float)
        pnl = returns
    if returns.size == 0:
        nan = float("nan")
        return {"win_rate": nan, "profit_factor": nan, "avg_trade_return": nan, "n_trades": 0.0}
    gains, losses = pnl[pnl > 0].sum(), -pnl[pnl < 0].sum()
    profit_factor = gains / losses if losses > 0 else (float("inf") if gains > 0 else float("nan"))
    return {
        "win_rate": float(np.mean(returns > 0)),
        "profit_factor": float(profit_factor),
        "avg_trade_return": float(returns.mean()),
        "n_trades": float(returns.size),
    }


def activity_metrics(
    equity: pd.Series,
    years: float,
    *,
    positions: np.ndarray | Sequence[float] | None,
    traded_notional: float | None,
    ledger: pl.DataFrame | None,
) -> Metrics:
    """exposure (share of bars with a non-zero position), turnover total and per year, unfilled orders."""
    if positions is None and ledger is not None and ledger_tools.BAR_COL in ledger.columns:
        positions = ledger_tools.positions_from_ledger(ledger, len(equity))
    if traded_notional is None and ledger is not None:
        traded_notional = ledger_tools.traded_notional(ledger)
    exposure = (
        float(np.mean(np.asarray(positions, dtype=float) != 0)) if positions is not None else float("nan")
    )
    turnover = traded_notional / float(equity.mean()) if traded_notional is not None else float("nan")
    return {
        "exposure": exposure,
        "turnover": turnover,
        "annual_turnover": turnover / years if years > 0 else float("nan"),
        "unfilled_order_pct": ledger_tools.unfilled_order_pct(ledger) if ledger is not None else float("nan"),
    }


def compute_metrics(
    equity: EquityLike,
    timeframe: str,
    *,
    timestamps: Any = None,
    ledger: pl.DataFrame | None = None,
    trades: pl.DataFrame | np.ndarray | Sequence[float] | None = None,
    positions: np.ndarray | Sequence[float] | None = None,
    traded_notional: float | None = None,
) -> Metrics:
    """Every metric of one backtest as a flat dict of floats.

    ``ledger`` (fills and unfilled orders) supplies, unless given explicitly, the
    round-trip ``trades``, the ``traded_notional`` and the per-bar ``positions``
    (from its bar index).  ``positions`` has one value per equity point.
    """
    curve = equity_series(equity, timestamps)
    if positions is not None and len(positions) != len(curve):
        raise DataError(f"{len(positions)} positions for {len(curve)} equity points")
    if trades is None and ledger is not None:
        trades = ledger_tools.round_trips(ledger)
    metrics = return_metrics(curve, timeframe)
    metrics.update(trade_metrics(trades))
    metrics.update(
        activity_metrics(
            curve, metrics["years"], positions=positions, traded_notional=traded_notional, ledger=ledger
        )
    )
    return metrics
