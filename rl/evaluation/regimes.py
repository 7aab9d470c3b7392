"""Market regimes and stress windows: does an agent only work in one kind of market?

Regime rule (causal: a label at bar t uses closes up to and including bar t only),
parameters in :class:`RegimeRule`:

* trailing return R_t = close_t / close_{t-W} - 1 over W = ``window_days`` of bars
  (90 days; counted in bars, so an exchange gap makes the window slightly longer);
* trend: ``bull`` if R_t > +``trend_threshold`` (0.20), ``bear`` if R_t < -0.20,
  ``sideways`` otherwise, ``warmup`` during the first W bars.  On Binance BTC/USDT 1h
  2017-08..2022-10 this gives roughly 35% bull, 29% bear and 32% sideways bars;
* volatility: trailing annualised volatility of log returns over the same W bars;
  ``high`` if above its own expanding median up to bar t, ``low`` otherwise.

A strategy's return over bar i (equity E_{i-1} -> E_i) is attributed to the regime
known at the start of the bar, the label at t_{i-1}.  Metrics per regime are computed
on the returns of that regime's bars stitched together in time order.

Stress windows are half-open UTC intervals [start 00:00, end 00:00); a window's
equity slice is prefixed by the last point before ``start`` so the first bar's move counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from features.data.schema import DataError, bars_per_year, parse_timeframe
from rl.evaluation.metrics import (
    EquityLike,
    cagr,
    equity_series,
    max_drawdown,
    sharpe_ratio,
    simple_returns,
    sortino_ratio,
)

WARMUP = "warmup"


@dataclass(frozen=True)
class RegimeRule:
    window_days: float = 90.0
    trend_threshold: float = 0.20

    def window_bars(self, timeframe: str) -> int:
        return max(2, round(timedelta(days=self.window_days) / parse_timeframe(timeframe)))


@dataclass(frozen=True)
class StressWindow:
    name: str
    start: datetime
    end: datetime  # exclusive
    description: str


def _day(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, tzinfo=UTC)


STRESS_WINDOWS: tuple[StressWindow, ...] = (
    StressWindow("covid_2020_03", _day(2020, 3, 1), _day(2020, 4, 1), "March 2020 COVID crash"),
    StressWindow(
        "may_2021_crash", _day(2021, 5, 10), _day(2021, 6, 30), "May-June 2021 crash (China mining ban)"
    ),
    StressWindow(
        "finrl_2022_crash", _day(2022, 4, 30), _day(2022, 6, 27), "LUNA/3AC crash, FinRL crypto study test"
    ),
    StressWindow("ftx_2022_11", _day(2022, 11, 6), _day(2022, 11, 15), "FTX collapse"),
)


def label_regimes(close: pd.Series, timeframe: str, rule: RegimeRule | None = None) -> pd.DataFrame:
    """Per bar: trailing_return, trailing_volatility, trend and volatility labels (see module docstring)."""
    rule = rule or RegimeRule()
    window = rule.window_bars(timeframe)
    prices = close.astype(float)
    if (prices <= 0).any() or prices.isna().any():
        raise DataError("regime labelling needs positive, non-missing close prices")
    trailing_return = prices / prices.shift(window) - 1.0
    log_returns = np.log(prices).diff()
    trailing_vol = log_returns.rolling(window).std(ddof=1) * np.sqrt(bars_per_year(timeframe))
    trend = np.select(
        [
            trailing_return.isna(),
            trailing_return > rule.trend_threshold,
            trailing_return < -rule.trend_threshold,
        ],
        [WARMUP, "bull", "bear"],
        "sideways",
    )
    median = trailing_vol.expanding().median()
    volatility = np.where(trailing_vol.isna(), WARMUP, np.where(trailing_vol > median, "high", "low"))
    columns = {"trailing_return": trailing_return, "trailing_volatility": trailing_vol}
    return pd.DataFrame({**columns, "trend": trend, "volatility": volatility}, index=close.index)


def _segment_metrics(returns: np.ndarray, periods: float) -> dict[str, float]:
    if returns.size == 0:
        return {"n_bars": 0.0}
    growth = np.concatenate([[1.0], np.cumprod(1.0 + returns)])
    total = float(growth[-1] - 1.0)
    return {
        "n_bars": float(returns.size),
        "total_return": total,
        "annual_return": cagr(total, returns.size / periods),
        "annual_volatility": float(returns.std(ddof=1) * np.sqrt(periods))
        if returns.size > 1
        else float("nan"),
        "sharpe": sharpe_ratio(returns, periods),
        "sortino": sortino_ratio(returns, periods),
        "max_drawdown": max_drawdown(pd.Series(growth)),
    }


def metrics_by_regime(equity: EquityLike, timeframe: str, labels: pd.Series) -> pd.DataFrame:
    """Metrics of the strategy's returns grouped by the regime label in force at the start of each bar."""
    curve = equity_series(equity)
    if not isinstance(curve.index, pd.DatetimeIndex):
        raise DataError("metrics by regime need an equity curve indexed by timestamps")
    label_index = pd.DatetimeIndex(labels.index)
    if label_index.tz is None:
        raise DataError("regime labels must be indexed by UTC timestamps")
    at_start = labels.set_axis(label_index.tz_convert("UTC")).sort_index()
    regime = at_start.reindex(curve.index[:-1], method="ffill").to_numpy()
    returns = simple_returns(curve).to_numpy()
    periods = bars_per_year(timeframe)
    rows = {}
    for name in sorted({str(x) for x in regime if isinstance(x, str)}):
        mask = regime == name
        rows[name] = {**_segment_metrics(returns[mask], periods), "share_of_bars": float(mask.mean())}
    return pd.DataFrame.from_dict(rows, orient="index")


def window_slice(curve: pd.Series, start: datetime, end: datetime) -> pd.Series:
    """Equity points with start <= t < end, prefixed by the last point before start when there is one."""
    inside = (curve.index >= start) & (curve.index < end)
    positions = np.flatnonzero(inside)
    if positions.size and positions[0] > 0:
        positions = np.concatenate([[positions[0] - 1], positions])
    return curve.iloc[positions]


def metrics_by_window(
    equity: EquityLike,
    timeframe: str,
    windows: tuple[StressWindow, ...] = STRESS_WINDOWS,
    benchmark: EquityLike | None = None,
) -> pd.DataFrame:
    """Metrics of the strategy (and of a benchmark, prefixed ``benchmark_``) inside each stress window.

    ``coverage`` is the share of the window's bars the strategy's returns cover (1 for a full window).
    """
    curves = {"": equity_series(equity)}
    if benchmark is not None:
        curves["benchmark_"] = equity_series(benchmark)
    periods = bars_per_year(timeframe)
    rows = {}
    for window in windows:
        row: dict[str, object] = {"start": window.start, "end": window.end, "description": window.description}
        for prefix, curve in curves.items():
            if not isinstance(curve.index, pd.DatetimeIndex):
                raise DataError("metrics by window need equity curves indexed by timestamps")
            piece = window_slice(curve, window.start, window.end)
            returns = simple_returns(piece).to_numpy() if len(piece) > 1 else np.array([])
            row.update({prefix + k: v for k, v in _segment_metrics(returns, periods).items()})
        bars_in_window = (window.end - window.start) / parse_timeframe(timeframe)
        row["coverage"] = float(row["n_bars"]) / bars_in_window  # type: ignore[arg-type]
        rows[window.name] = row
    return pd.DataFrame.from_dict(rows, orient="index")
