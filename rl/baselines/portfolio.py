"""Equal Risk Contribution: a multi-asset portfolio in which every instrument adds the same risk.

Risk contribution of instrument i: ``RC_i = w_i (S w)_i`` for covariance ``S``; ERC makes them
equal.  Solved as in Spinu (2013) / Griveau-Billion, Richard and Roncalli (2013): minimise
``y' S y / 2 - sum_i b_i log y_i`` (convex, unique minimum, where ``y_i (S y)_i = b_i``) by
cyclical coordinate descent, each coordinate step the positive root of a quadratic, then
``w = y / sum(y)``.  Many rebalancing dates are solved at once, vectorised over dates.
"""

from __future__ import annotations

import numpy as np

from features.data.schema import DataError
from rl.baselines.base import Baseline, SignalContext, bars_in
from rl.baselines.rules import CLOSE


def erc_weights(
    covariances: np.ndarray, budgets: np.ndarray | None = None, *, tolerance: float = 1e-10, max_iterations: int = 1000
) -> np.ndarray:
    """Weights (summing to 1) whose risk contributions are proportional to ``budgets`` (equal by default).

    ``covariances`` is one [N, N] matrix or a stack [K, N, N]; a matrix with a non-positive
    variance gets equal weights.  Iterates until every weight moves by less than ``tolerance``.
    """
    cov = np.asarray(covariances, dtype=np.float64)
    single = cov.ndim == 2
    cov = cov[None] if single else cov
    n = cov.shape[1]
    b = np.full(n, 1.0 / n) if budgets is None else np.asarray(budgets, dtype=np.float64) / np.sum(budgets)
    diag = np.diagonal(cov, axis1=1, axis2=2)
    valid: np.ndarray = np.all(diag > 0, axis=1)
    scale = np.where(valid, diag.mean(axis=1), 1.0)[:, None, None]
    sigma = np.where(valid[:, None, None], cov / scale, np.eye(n))  # scale-free: solve on S / mean variance
    var = np.diagonal(sigma, axis1=1, axis2=2)
    y = 1.0 / np.sqrt(var)
    for _ in range(max_iterations):
        before = y / y.sum(axis=1, keepdims=True)
        for i in range(n):
            others = np.einsum("kj,kj->k", sigma[:, i, :], y) - var[:, i] * y[:, i]
            y[:, i] = (-others + np.sqrt(others**2 + 4.0 * var[:, i] * b[i])) / (2.0 * var[:, i])
        after = y / y.sum(axis=1, keepdims=True)
        if np.abs(after - before).max() < tolerance:
            break
    weights = np.where(valid[:, None], after, 1.0 / n)
    return weights[0] if single else weights


def risk_contributions(weights: np.ndarray, covariance: np.ndarray) -> np.ndarray:
    """``w_i (S w)_i``: each instrument's share of the portfolio variance (they sum to ``w' S w``)."""
    return weights * (covariance @ weights)


def rolling_covariances(returns: np.ndarray, window: int, rows: np.ndarray) -> np.ndarray:
    """Sample covariance (ddof 1) of the ``window`` returns ending at each of ``rows``: [K, N, N]."""
    r = np.nan_to_num(returns)
    first = np.concatenate([np.zeros((1, r.shape[1])), np.cumsum(r, axis=0)])
    second = np.concatenate([np.zeros((1, *r.shape[1:], r.shape[1])), np.cumsum(r[:, :, None] * r[:, None, :], axis=0)])
    end, start = rows + 1, rows + 1 - window
    sums = first[end] - first[start]
    products = second[end] - second[start]
    return (products - sums[:, :, None] * sums[:, None, :] / window) / (window - 1)


class EqualRiskContribution(Baseline):
    """Fully invested ERC weights from the covariance of the last ``lookback_days`` of bar returns,
    recomputed at the start of each ``rebalance_days`` period (equal weights until the first full
    look-back)."""

    name = "erc"

    def __init__(self, lookback_days: float = 30.0, rebalance_days: float = 7.0) -> None:
        super().__init__()
        self.lookback_days, self.rebalance_days = float(lookback_days), float(rebalance_days)
        bars_in(self.lookback_days, "1d")
        bars_in(self.rebalance_days, "1d")

    def weights(self, context: SignalContext) -> np.ndarray:
        if context.n_instruments < 2:
            raise DataError("erc needs at least two instruments")
        window = max(2, bars_in(self.lookback_days, context.timeframe))
        close = context.ohlcv[:, :, CLOSE]
        returns = np.zeros_like(close)
        returns[1:] = close[1:] / close[:-1] - 1.0  # row t: the return of bar t, known at its close
        starts = np.flatnonzero(context.period_starts(self.rebalance_days))
        ready = starts[starts >= window]  # rows 1..t hold `window` returns
        full = np.full(close.shape, np.nan)
        full[: window if ready.size == 0 else ready[0]] = 1.0 / context.n_instruments
        if ready.size:
            full[ready] = erc_weights(rolling_covariances(returns, window, ready))
        full = _forward_fill(full)
        return context.tail(full)


def _forward_fill(values: np.ndarray) -> np.ndarray:
    """Each NaN row takes the last complete row above it."""
    rows = np.where(np.isnan(values).any(axis=1), 0, np.arange(len(values)))
    return values[np.maximum.accumulate(rows)]
