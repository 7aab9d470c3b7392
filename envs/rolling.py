"""Causal rolling statistics over [T, N] arrays: row ``t`` uses rows ``<= t`` only."""

from __future__ import annotations

import numpy as np


def log_returns(close: np.ndarray) -> np.ndarray:
    """Log return of each bar against the previous close; row 0 is 0 (no previous bar)."""
    out = np.zeros_like(close, dtype=np.float64)
    out[1:] = np.log(close[1:] / close[:-1])
    return out


def rolling_mean_std(returns: np.ndarray, lookback: int) -> tuple[np.ndarray, np.ndarray]:
    """Causal mean and sample std of ``returns[1..t]`` over the last ``lookback`` bars, per column.

    ``returns`` is [T, N]; row 0 is ignored (it has no previous bar).  Rows with
    fewer than two returns get a std of 0, rows with none a mean of 0.
    """
    t = returns.shape[0]
    values = returns.copy()
    values[0] = 0.0
    zero = np.zeros((1, values.shape[1]))
    first = np.concatenate([zero, np.cumsum(values, axis=0)])
    second = np.concatenate([zero, np.cumsum(values * values, axis=0)])
    ends = np.arange(1, t + 1)
    starts = np.maximum(ends - lookback, 1)
    count = (ends - starts).astype(np.float64)[:, None]
    total = first[ends] - first[starts]
    squares = second[ends] - second[starts]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), 0.0)
        var = np.where(count > 1, (squares - count * mean * mean) / np.maximum(count - 1, 1), 0.0)
    return mean, np.sqrt(np.maximum(var, 0.0))


def rolling_mean(values: np.ndarray, lookback: int) -> np.ndarray:
    """Causal mean of ``values[t-lookback+1..t]`` (fewer rows at the start) of a [T, N] array."""
    t = values.shape[0]
    cumulative = np.concatenate([np.zeros((1, values.shape[1])), np.cumsum(values, axis=0)])
    ends = np.arange(1, t + 1)
    starts = np.maximum(ends - lookback, 0)
    count = (ends - starts).astype(np.float64)[:, None]
    return (cumulative[ends] - cumulative[starts]) / count
