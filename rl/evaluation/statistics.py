"""Is a Sharpe ratio real? PSR, DSR (Bailey & Lopez de Prado 2012, 2014) and PBO by CSCV (Bailey et al. 2015).

Every Sharpe ratio in this module is per period (per bar, not annualised):
``SR = mean(r) / std(r, ddof=1)``.  Divide an annual Sharpe by
``sqrt(bars_per_year)`` before passing it in.  Skewness and kurtosis are the
bias-corrected sample estimators (``scipy.stats`` with ``bias=False``, equal to
pandas ``skew()`` and ``kurt() + 3``), kurtosis raw (3 for a normal law), which
is what QuantStats uses as well.

* PSR(SR*) = Phi((SR - SR*) sqrt(n - 1) / sqrt(1 - skew SR + (kurt - 1) / 4 SR^2)):
  the probability that the true Sharpe exceeds SR*, given n observations;
* DSR = PSR(SR0) with SR0 the expected maximum Sharpe of N unskilled trials,
  SR0 = sqrt(V) ((1 - g) Phi^-1(1 - 1/N) + g Phi^-1(1 - 1/(N e))), g the
  Euler-Mascheroni constant and V the variance of the trials' Sharpe ratios;
* PBO: split T rows of an [T x N] matrix of returns of N configurations into S
  blocks; for every choice of S/2 blocks as in-sample (the rest out-of-sample)
  take the in-sample best configuration, its out-of-sample relative rank
  w = rank / (N + 1) and logit l = ln(w / (1 - w)); PBO = share of l <= 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy import stats as scipy_stats

from features.data.schema import DataError

EULER_MASCHERONI = 0.5772156649015329


def sample_std(returns: np.ndarray) -> float:
    """std(ddof=1), or 0 when it is only rounding noise (below 1e-12 of the largest |return|)."""
    r = np.asarray(returns, dtype=float)
    if r.size < 2:
        return 0.0
    std = float(r.std(ddof=1))
    return std if std > 1e-12 * float(np.abs(r).max()) else 0.0


def sharpe_std_error(sharpe: float, n_obs: int, skew: float = 0.0, kurtosis: float = 3.0) -> float:
    """Standard error of a per-period Sharpe estimate under non-normal returns; NaN if undefined."""
    variance = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2
    if n_obs < 2 or variance <= 0:
        return float("nan")
    return math.sqrt(variance / (n_obs - 1))


def probabilistic_sharpe_ratio(
    sharpe: float, n_obs: int, skew: float = 0.0, kurtosis: float = 3.0, benchmark: float = 0.0
) -> float:
    """P(true per-period Sharpe > benchmark) given the observed Sharpe and moments."""
    error = sharpe_std_error(sharpe, n_obs, skew, kurtosis)
    if not math.isfinite(error) or not math.isfinite(sharpe):
        return float("nan")
    return float(scipy_stats.norm.cdf((sharpe - benchmark) / error))


def return_moments(returns: np.ndarray) -> tuple[float, int, float, float]:
    """(per-period Sharpe, n, bias-corrected skewness, bias-corrected raw kurtosis) of returns."""
    r = np.asarray(returns, dtype=float)
    if r.size < 4:
        return float("nan"), int(r.size), float("nan"), float("nan")
    std = sample_std(r)
    if std == 0:
        return float("nan"), int(r.size), float("nan"), float("nan")
    skew = float(scipy_stats.skew(r, bias=False))
    kurtosis = float(scipy_stats.kurtosis(r, fisher=False, bias=False))
    return float(r.mean() / std), int(r.size), skew, kurtosis


def probabilistic_sharpe_ratio_of(returns: np.ndarray, benchmark: float = 0.0) -> float:
    """PSR of a return series against a per-period benchmark Sharpe (NaN for < 4 or constant returns)."""
    sharpe, n, skew, kurtosis = return_moments(returns)
    return probabilistic_sharpe_ratio(sharpe, n, skew, kurtosis, benchmark)


def expected_max_sharpe(n_trials: int, sharpe_variance: float, mean_sharpe: float = 0.0) -> float:
    """Expected maximum of ``n_trials`` Sharpe estimates of given mean and variance (False Strategy Thm)."""
    if n_trials < 1 or sharpe_variance < 0:
        raise DataError(f"need n_trials >= 1 and sharpe_variance >= 0, got {n_trials}, {sharpe_variance}")
    if n_trials == 1:
        return mean_sharpe
    g = EULER_MASCHERONI
    quantiles = (1 - g) * scipy_stats.norm.ppf(1 - 1 / n_trials) + g * scipy_stats.norm.ppf(
        1 - 1 / (n_trials * math.e)
    )
    return float(mean_sharpe + math.sqrt(sharpe_variance) * quantiles)


def deflated_sharpe_ratio(
    sharpe: float,
    n_obs: int,
    n_trials: int,
    sharpe_variance: float,
    skew: float = 0.0,
    kurtosis: float = 3.0,
) -> float:
    """PSR of the selected strategy against the expected maximum Sharpe of ``n_trials`` unskilled trials."""
    return probabilistic_sharpe_ratio(
        sharpe, n_obs, skew, kurtosis, expected_max_sharpe(n_trials, sharpe_variance)
    )


def deflated_sharpe_ratio_of(returns: np.ndarray, trial_sharpes: np.ndarray) -> float:
    """DSR of a return series selected among trials whose per-period Sharpe ratios are ``trial_sharpes``."""
    trials = np.asarray(trial_sharpes, dtype=float)
    if trials.size < 2:
        raise DataError(f"DSR needs the Sharpe ratios of at least 2 trials, got {trials.size}")
    sharpe, n, skew, kurtosis = return_moments(returns)
    return deflated_sharpe_ratio(sharpe, n, trials.size, float(trials.var(ddof=1)), skew, kurtosis)


@dataclass(frozen=True)
class PBOResult:
    """CSCV outcome: one entry per in-sample/out-of-sample split."""

    pbo: float
    logits: np.ndarray
    in_sample_best: np.ndarray  # in-sample performance of the in-sample best configuration
    out_of_sample: np.ndarray  # out-of-sample performance of that configuration
    chosen: np.ndarray  # index of the in-sample best configuration

    @property
    def n_splits(self) -> int:
        return int(self.logits.size)

    @property
    def probability_of_loss(self) -> float:
        """Share of splits where the in-sample best configuration loses out of sample (performance < 0)."""
        return float(np.mean(self.out_of_sample < 0))

    @property
    def degradation_slope(self) -> float:
        """Least-squares slope of out-of-sample on in-sample performance (negative: overfit)."""
        if np.ptp(self.in_sample_best) == 0:
            return float("nan")
        return float(np.polyfit(self.in_sample_best, self.out_of_sample, 1)[0])


def _block_sharpe(sums: np.ndarray, squares: np.ndarray, counts: np.ndarray) -> np.ndarray:
    mean = sums / counts
    variance = (squares - counts * mean**2) / (counts - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(variance > 0, mean / np.sqrt(np.maximum(variance, 0.0)), np.nan)


def _split_scores(
    blocks: list[np.ndarray], metric: Callable[[np.ndarray], np.ndarray] | None
) -> tuple[np.ndarray, np.ndarray]:
    """(in-sample, out-of-sample) scores [splits x N] for every choice of half the blocks."""
    n_blocks = len(blocks)
    chosen = np.array(list(combinations(range(n_blocks), n_blocks // 2)))
    membership = np.zeros((len(chosen), n_blocks))
    np.put_along_axis(membership, chosen, 1.0, axis=1)
    if metric is None:
        sums = np.stack([b.sum(axis=0) for b in blocks])
        squares = np.stack([(b**2).sum(axis=0) for b in blocks])
        counts = np.array([[len(b)] for b in blocks], dtype=float)
        scores = [_block_sharpe(m @ sums, m @ squares, m @ counts) for m in (membership, 1.0 - membership)]
        return scores[0], scores[1]
    in_sample = np.stack([metric(np.concatenate([blocks[i] for i in row])) for row in chosen])
    rest = [sorted(set(range(n_blocks)) - set(row)) for row in chosen]
    out_sample = np.stack([metric(np.concatenate([blocks[i] for i in row])) for row in rest])
    return in_sample, out_sample


def probability_of_backtest_overfitting(
    returns: np.ndarray, n_partitions: int = 16, metric: Callable[[np.ndarray], np.ndarray] | None = None
) -> PBOResult:
    """PBO of choosing the best of N configurations, from returns [T x N], by CSCV with S = ``n_partitions``.

    ``metric`` maps a [t x N] block of returns to N scores (default: per-period
    Sharpe, computed vectorised).  The earliest ``T mod S`` rows are dropped so
    the S blocks have equal size.  Ties in the out-of-sample ranking get the
    average rank.
    """
    matrix = np.asarray(returns, dtype=float)
    if matrix.ndim != 2 or matrix.shape[1] < 2:
        raise DataError(f"PBO needs a [T x N] matrix with N >= 2 configurations, got shape {matrix.shape}")
    if n_partitions < 2 or n_partitions % 2:
        raise DataError(f"n_partitions must be an even number >= 2, got {n_partitions}")
    block = matrix.shape[0] // n_partitions
    if block < 2:
        raise DataError(f"{matrix.shape[0]} rows are too few for {n_partitions} blocks of >= 2 rows")
    if not np.isfinite(matrix).all():
        raise DataError("PBO returns matrix holds NaN or infinite values")
    usable = matrix[matrix.shape[0] - block * n_partitions :]
    blocks = [usable[i * block : (i + 1) * block] for i in range(n_partitions)]
    in_sample, out_sample = _split_scores(blocks, metric)
    in_sample = np.where(np.isnan(in_sample), -np.inf, in_sample)
    best = np.argmax(in_sample, axis=1)
    rows = np.arange(len(best))
    best_oos = out_sample[rows, best]
    below = (out_sample < best_oos[:, None]).sum(axis=1)
    ties = (out_sample == best_oos[:, None]).sum(axis=1) - 1
    relative_rank = (1 + below + ties / 2) / (matrix.shape[1] + 1)
    logits = np.log(relative_rank / (1 - relative_rank))
    return PBOResult(float(np.mean(logits <= 0)), logits, in_sample[rows, best], best_oos, best)
