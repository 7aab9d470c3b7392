"""Monte Carlo robustness: block bootstrap of returns or trades, and policies run on synthetic paths.

The bootstraps resample blocks of consecutive observations (keeping
short-range dependence such as volatility clustering) and wrap around the end
of the sample (circular).  ``method="stationary"`` draws geometric block
lengths with mean ``block_length`` (Politis & Romano 1994); ``"fixed"`` uses
blocks of exactly ``block_length``.  Without a block length the rule of thumb
``round(n ** (1/3))`` is used.  Paths are simulated in chunks of
:data:`CHUNK_CELLS` cells, fully vectorised in numpy, and summarised by their
final return and maximum drawdown (negative fraction, baseline = start equity).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl

from features.data.schema import DataError
from features.data.synthetic import PriceProcess
from rl.evaluation.metrics import EquityLike, equity_series, max_drawdown

BootstrapMethod = Literal["stationary", "fixed"]
CHUNK_CELLS = 4_000_000
PERCENTILES: tuple[float, ...] = (1.0, 5.0, 25.0, 50.0, 75.0, 95.0, 99.0)


@dataclass(frozen=True)
class MonteCarloResult:
    """Final return and max drawdown of each simulated path."""

    final_returns: np.ndarray
    max_drawdowns: np.ndarray

    @property
    def n_sims(self) -> int:
        return int(self.final_returns.size)

    @property
    def probability_of_loss(self) -> float:
        return float(np.mean(self.final_returns < 0))

    def worst_case(self) -> dict[str, float]:
        """1% and 5% percentiles: the bad tail of final return and of (negative) max drawdown."""
        return {
            f"{name}_p{int(q)}": float(np.percentile(values, q))
            for name, values in (("final_return", self.final_returns), ("max_drawdown", self.max_drawdowns))
            for q in (1.0, 5.0)
        }

    def summary(self, percentiles: Sequence[float] = PERCENTILES) -> dict[str, float]:
        """Mean and percentiles of both distributions, plus the probability of a loss."""
        out: dict[str, float] = {
            "n_sims": float(self.n_sims),
            "probability_of_loss": self.probability_of_loss,
        }
        for name, values in (("final_return", self.final_returns), ("max_drawdown", self.max_drawdowns)):
            out[f"{name}_mean"] = float(values.mean())
            out.update({f"{name}_p{q:g}": float(np.percentile(values, q)) for q in percentiles})
        return out


def default_block_length(n_obs: int) -> int:
    return max(1, round(n_obs ** (1 / 3)))


def bootstrap_indices(
    n_source: int,
    n_out: int,
    n_sims: int,
    block_length: float,
    method: BootstrapMethod,
    rng: np.random.Generator,
) -> np.ndarray:
    """Indices [n_out x n_sims] (time down the rows) into a sample of ``n_source`` observations.

    Circular block bootstrap.  Time-major layout: each step of the cumulative
    sums and running maxima is one vectorised update across all simulations.
    """
    if n_source < 1 or n_out < 1 or n_sims < 1 or block_length < 1:
        raise DataError(
            f"bootstrap needs positive sizes, got {n_source=}, {n_out=}, {n_sims=}, {block_length=}"
        )
    steps = np.arange(n_out)[:, None]
    if method == "fixed":
        length = int(block_length)
        starts = rng.integers(0, n_source, size=(-(-n_out // length), n_sims))
        return np.remainder(starts[steps[:, 0] // length] + steps % length, n_source)
    if method != "stationary":
        raise DataError(f"unknown bootstrap method {method!r}: use 'stationary' or 'fixed'")
    new_block = rng.random((n_out, n_sims)) < 1.0 / block_length
    new_block[0] = True
    block_start = np.maximum.accumulate(np.where(new_block, steps, 0), axis=0)
    start_values = np.zeros((n_out, n_sims), dtype=np.int64)
    start_values[new_block] = rng.integers(0, n_source, size=int(new_block.sum()))
    indices = np.take_along_axis(start_values, block_start, axis=0)
    indices += steps - block_start
    return np.remainder(indices, n_source, out=indices)


def _path_stats(log_growth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(final return, max drawdown) of paths of per-step log growth [steps x sims], equity starting at 1."""
    log_equity = np.cumsum(log_growth, axis=0)
    peak = np.maximum(np.maximum.accumulate(log_equity, axis=0), 0.0)
    return np.expm1(log_equity[-1]), np.expm1((log_equity - peak).min(axis=0))


def _chunks(n_sims: int, n_out: int) -> list[int]:
    per_chunk = max(1, CHUNK_CELLS // n_out)
    return [min(per_chunk, n_sims - start) for start in range(0, n_sims, per_chunk)]


def bootstrap_returns(
    returns: np.ndarray | Sequence[float],
    n_sims: int = 1_000,
    *,
    n_bars: int | None = None,
    block_length: float | None = None,
    method: BootstrapMethod = "stationary",
    seed: int = 0,
) -> MonteCarloResult:
    """Resample per-bar returns into ``n_sims`` compounded paths of ``n_bars`` (default: sample length)."""
    r = np.asarray(returns, dtype=float)
    if r.ndim != 1 or r.size < 2 or not np.isfinite(r).all() or (r < -1).any():
        raise DataError("bootstrap needs a 1-D array of >= 2 finite returns, none below -100%")
    n_out = n_bars or r.size
    length = block_length or default_block_length(r.size)
    with np.errstate(divide="ignore"):
        log_growth = np.log1p(r)
    rng = np.random.default_rng(seed)
    finals, drawdowns = [], []
    for size in _chunks(n_sims, n_out):
        final, drawdown = _path_stats(log_growth[bootstrap_indices(r.size, n_out, size, length, method, rng)])
        finals.append(final)
        drawdowns.append(drawdown)
    return MonteCarloResult(np.concatenate(finals), np.concatenate(drawdowns))


def bootstrap_trades(
    trade_pnl: np.ndarray | Sequence[float],
    initial_equity: float,
    n_sims: int = 1_000,
    *,
    n_trades: int | None = None,
    block_length: float = 1,
    method: BootstrapMethod = "fixed",
    seed: int = 0,
) -> MonteCarloResult:
    """Resample trade P&L (quote currency) into new trade orders added to ``initial_equity``.

    P&L is added, not compounded: each trade keeps the size it had.  Drawdowns
    are floored at -100% (equity at or below zero is ruin).
    """
    pnl = np.asarray(trade_pnl, dtype=float)
    if pnl.ndim != 1 or pnl.size < 1 or not np.isfinite(pnl).all() or initial_equity <= 0:
        raise DataError("trade bootstrap needs a 1-D array of finite trade P&L and a positive initial equity")
    n_out = n_trades or pnl.size
    rng = np.random.default_rng(seed)
    finals, drawdowns = [], []
    for size in _chunks(n_sims, n_out):
        indices = bootstrap_indices(pnl.size, n_out, size, block_length, method, rng)
        equity = initial_equity + np.cumsum(pnl[indices], axis=0)
        peak = np.maximum(np.maximum.accumulate(equity, axis=0), initial_equity)
        finals.append(equity[-1] / initial_equity - 1.0)
        drawdowns.append(np.maximum((equity / peak - 1.0).min(axis=0), -1.0))
    return MonteCarloResult(np.concatenate(finals), np.concatenate(drawdowns))


def synthetic_paths(
    process: PriceProcess, n_paths: int, n_bars: int, timeframe: str = "1h", seed: int = 0
) -> list[pl.DataFrame]:
    """``n_paths`` independent bar frames from ``process``, seeded by children of ``SeedSequence(seed)``."""
    children = np.random.SeedSequence(seed).spawn(n_paths)
    return [process.simulate(n_bars, timeframe, seed=child) for child in children]


PolicyRunner = Callable[[pl.DataFrame], EquityLike]


def simulate_on_paths(policy_runner: PolicyRunner, paths: Iterable[pl.DataFrame]) -> MonteCarloResult:
    """Run a policy on each bar path (``policy_runner(bars) -> equity curve``) and collect the outcomes."""
    finals, drawdowns = [], []
    for path in paths:
        equity = equity_series(policy_runner(path))
        finals.append(float(equity.iloc[-1] / equity.iloc[0] - 1.0))
        drawdowns.append(max_drawdown(equity))
    if not finals:
        raise DataError("simulate_on_paths got no paths")
    return MonteCarloResult(np.array(finals), np.array(drawdowns))
