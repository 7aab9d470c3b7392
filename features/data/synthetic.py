"""Synthetic markets for augmentation and tests: GBM, Heston, Merton jumps, Ornstein-Uhlenbeck.

Every process is a :class:`PriceProcess`.  Its public :meth:`PriceProcess.simulate`
turns a fine log-price path from the private ``_simulate_path`` hook into valid
OHLCV bars in the project bar schema:

* parameters are per year (annual drift, annual volatility, jump intensity per
  year, ...); a year is 365 days of 24 hours, as crypto trades around the clock;
* each bar is simulated in ``substeps`` steps, so open, high, low and close come
  from an intrabar path: open is the previous close, high >= max(open, close),
  low <= min(open, close), and every price is positive (paths live in log space);
* volume is lognormal around ``VolumeModel.daily_volume`` scaled to the bar
  length, rising with the bar's absolute standardised return;
* the same seed gives the same frame (numpy ``Generator``), a different seed a
  different one.

:func:`synthetic_dataset` makes several series on the exchange ``synthetic``,
independent or with correlated diffusion shocks.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
from scipy.signal import lfilter

from features.data.schema import TIMESTAMP, TIMESTAMP_DTYPE, BarKey, DataError, Dataset, parse_timeframe

SYNTHETIC_EXCHANGE = "synthetic"
DEFAULT_START = datetime(2020, 1, 1, tzinfo=UTC)
YEAR = timedelta(days=365)
DAY = timedelta(days=1)
Seed = int | np.random.SeedSequence


def _require_positive(**values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise DataError(f"{name} must be positive, got {value}")


MAX_VOLUME_Z = 10.0


@dataclass(frozen=True)
class VolumeModel:
    """Lognormal bar volume whose log rises by ``return_sensitivity`` per unit of |standardised return|."""

    daily_volume: float = 1_000.0
    dispersion: float = 0.5
    return_sensitivity: float = 0.5

    def __post_init__(self) -> None:
        _require_positive(daily_volume=self.daily_volume)
        if self.dispersion < 0:
            raise DataError(f"volume dispersion must be >= 0, got {self.dispersion}")

    def sample(self, abs_z: np.ndarray, bar: timedelta, rng: np.random.Generator) -> np.ndarray:
        """Volumes for bars whose |log return| / expected bar volatility is ``abs_z``."""
        mean_abs_normal = math.sqrt(2.0 / math.pi)
        log_volume = (
            math.log(self.daily_volume * (bar / DAY))
            - self.dispersion**2 / 2
            # The volume response saturates: a move of 10+ expected standard deviations (a far-from-mean
            # OU start, a jump) doubles down no further, so volume stays finite.
            + self.return_sensitivity * (np.minimum(abs_z, MAX_VOLUME_Z) - mean_abs_normal)
            + self.dispersion * rng.standard_normal(len(abs_z))
        )
        return np.exp(log_volume)


@dataclass(frozen=True)
class BarSettings:
    """How a fine path becomes bars: bar length, first bar open time, substeps per bar."""

    timeframe: str = "1h"
    start: datetime = DEFAULT_START
    substeps: int = 16
    volume: VolumeModel = field(default_factory=VolumeModel)
    include_latent: bool = False

    def __post_init__(self) -> None:
        parse_timeframe(self.timeframe)
        if self.substeps < 1:
            raise DataError(f"substeps must be at least 1, got {self.substeps}")
        if self.start.tzinfo is None:
            raise DataError(f"start {self.start} must be timezone-aware (UTC)")

    @property
    def bar(self) -> timedelta:
        return parse_timeframe(self.timeframe)

    @property
    def step_years(self) -> float:
        return self.bar / YEAR / self.substeps


@dataclass(frozen=True)
class SimulatedPath:
    """A log-price path of n_steps + 1 points; ``latent`` holds per-step hidden state (n_steps each)."""

    log_price: np.ndarray
    latent: Mapping[str, np.ndarray] = field(default_factory=dict)


class PriceProcess(ABC):
    """A continuous-time price model simulated into OHLCV bars.

    Subclasses are frozen dataclasses holding per-year parameters and implement
    ``_simulate_path`` (the fine log-price path, driven by the given standard
    normal diffusion ``shocks`` plus any extra randomness from ``rng``) and
    ``annual_volatility`` (the typical volatility, which scales volume).
    """

    initial_price: float

    @property
    @abstractmethod
    def annual_volatility(self) -> float:
        """Typical annualised volatility of log returns."""

    @abstractmethod
    def _simulate_path(self, shocks: np.ndarray, dt: float, rng: np.random.Generator) -> SimulatedPath:
        """Log-price path of ``len(shocks) + 1`` points at step ``dt`` years, starting at log(initial_price)."""

    def simulate(
        self,
        n_bars: int,
        timeframe: str = "1h",
        seed: Seed = 0,
        *,
        start: datetime = DEFAULT_START,
        substeps: int = 16,
        volume: VolumeModel | None = None,
        include_latent: bool = False,
    ) -> pl.DataFrame:
        """``n_bars`` OHLCV bars of ``timeframe`` from ``start`` (UTC), reproducible by ``seed``.

        ``include_latent`` adds hidden state columns (Heston: ``variance`` at the bar close);
        keep it off for training data, where it would leak the true volatility.
        """
        settings = BarSettings(timeframe, start, substeps, volume or VolumeModel(), include_latent)
        rng = np.random.default_rng(seed)
        shocks = rng.standard_normal(_step_count(n_bars, settings))
        return self._bars_from_shocks(shocks, settings, rng)

    def _bars_from_shocks(self, shocks: np.ndarray, settings: BarSettings, rng: np.random.Generator) -> pl.DataFrame:
        path = self._simulate_path(shocks, settings.step_years, rng)
        prices = np.exp(path.log_price)
        if not (np.isfinite(prices).all() and (prices > 0).all()):
            raise DataError(f"{self!r} produced non-finite or zero prices: parameters too extreme")
        opens, highs, lows, closes = _ohlc(prices, settings.substeps)
        bar_volatility = self.annual_volatility * math.sqrt(settings.bar / YEAR)
        abs_z = np.abs(np.log(closes / opens)) / bar_volatility
        frame = pl.DataFrame(
            {
                TIMESTAMP: _timestamps(settings.start, settings.bar, len(opens)),
                "open": opens,
                "high": highs,
                "low": lows,
                "close": closes,
                "volume": settings.volume.sample(abs_z, settings.bar, rng),
            }
        )
        if settings.include_latent:
            step = settings.substeps
            frame = frame.with_columns(
                pl.Series(name, values[step - 1 :: step]) for name, values in path.latent.items()
            )
        return frame


def _step_count(n_bars: int, settings: BarSettings) -> int:
    if n_bars < 1:
        raise DataError(f"n_bars must be at least 1, got {n_bars}")
    return n_bars * settings.substeps


def _ohlc(prices: np.ndarray, substeps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Bars from a fine path: bar i spans points i*substeps .. (i+1)*substeps inclusive."""
    opens = prices[:-1:substeps]
    closes = prices[substeps::substeps]
    inside = prices[1:].reshape(len(opens), substeps)
    return opens, np.maximum(inside.max(axis=1), opens), np.minimum(inside.min(axis=1), opens), closes


def _timestamps(start: datetime, bar: timedelta, n_bars: int) -> pl.Series:
    start_us = (start.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    epoch_us = start_us + np.arange(n_bars, dtype=np.int64) * (bar // timedelta(microseconds=1))
    stamps = pl.from_epoch(pl.Series(TIMESTAMP, epoch_us), time_unit="us")
    return stamps.dt.replace_time_zone("UTC").cast(TIMESTAMP_DTYPE)


def _start_log_path(initial_price: float, increments: np.ndarray) -> np.ndarray:
    return math.log(initial_price) + np.concatenate([[0.0], np.cumsum(increments)])


@dataclass(frozen=True)
class GeometricBrownianMotion(PriceProcess):
    """dS/S = drift dt + volatility dW: log returns are normal with mean (drift - vol^2/2) dt."""

    drift: float = 0.0
    volatility: float = 0.6
    initial_price: float = 100.0

    def __post_init__(self) -> None:
        _require_positive(volatility=self.volatility, initial_price=self.initial_price)

    @property
    def annual_volatility(self) -> float:
        return self.volatility

    def _simulate_path(self, shocks: np.ndarray, dt: float, rng: np.random.Generator) -> SimulatedPath:
        increments = (self.drift - self.volatility**2 / 2) * dt + self.volatility * math.sqrt(dt) * shocks
        return SimulatedPath(_start_log_path(self.initial_price, increments))


@dataclass(frozen=True)
class OrnsteinUhlenbeck(PriceProcess):
    """Mean reversion of the LOG price: dx = mean_reversion (log(mean_price) - x) dt + volatility dW.

    Working on log price keeps prices positive; the price reverts toward
    ``mean_price`` with half-life ln(2) / mean_reversion years.  Steps use the
    exact AR(1) transition, so any step length is unbiased.
    """

    mean_reversion: float = 10.0
    mean_price: float = 100.0
    volatility: float = 0.6
    initial_price: float = 100.0

    def __post_init__(self) -> None:
        _require_positive(
            mean_reversion=self.mean_reversion,
            mean_price=self.mean_price,
            volatility=self.volatility,
            initial_price=self.initial_price,
        )

    @property
    def annual_volatility(self) -> float:
        return self.volatility

    def _simulate_path(self, shocks: np.ndarray, dt: float, rng: np.random.Generator) -> SimulatedPath:
        phi = math.exp(-self.mean_reversion * dt)
        noise = self.volatility * math.sqrt((1 - phi**2) / (2 * self.mean_reversion)) * shocks
        start = math.log(self.initial_price / self.mean_price)
        deviations, _ = lfilter([1.0], [1.0, -phi], noise, zi=[phi * start])
        return SimulatedPath(math.log(self.mean_price) + np.concatenate([[start], deviations]))


@dataclass(frozen=True)
class Heston(PriceProcess):
    """Stochastic variance: dv = mean_reversion (long_run_variance - v) dt + vol_of_vol sqrt(v) dZ.

    The variance uses the exact (noncentral chi-square) CIR transition, so it
    stays positive; the log price uses the trapezoid integrated variance with the
    price-variance ``correlation`` entering through the variance increment.
    """

    drift: float = 0.0
    long_run_variance: float = 0.36
    mean_reversion: float = 3.0
    vol_of_vol: float = 0.8
    correlation: float = -0.5
    initial_variance: float | None = None
    initial_price: float = 100.0

    def __post_init__(self) -> None:
        _require_positive(
            long_run_variance=self.long_run_variance,
            mean_reversion=self.mean_reversion,
            vol_of_vol=self.vol_of_vol,
            initial_price=self.initial_price,
            initial_variance=self.start_variance,
        )
        if not -1 <= self.correlation <= 1:
            raise DataError(f"correlation must be in [-1, 1], got {self.correlation}")

    @property
    def start_variance(self) -> float:
        return self.long_run_variance if self.initial_variance is None else self.initial_variance

    @property
    def annual_volatility(self) -> float:
        return math.sqrt(self.long_run_variance)

    def _variance_path(self, n_steps: int, dt: float, rng: np.random.Generator) -> np.ndarray:
        decay = math.exp(-self.mean_reversion * dt)
        scale = self.vol_of_vol**2 * (1 - decay) / (4 * self.mean_reversion)
        degrees = 4 * self.mean_reversion * self.long_run_variance / self.vol_of_vol**2
        variance = np.empty(n_steps + 1)
        variance[0] = current = self.start_variance
        for k in range(1, n_steps + 1):
            current = scale * rng.noncentral_chisquare(degrees, current * decay / scale)
            variance[k] = current
        return variance

    def _simulate_path(self, shocks: np.ndarray, dt: float, rng: np.random.Generator) -> SimulatedPath:
        variance = self._variance_path(len(shocks), dt, rng)
        integrated = (variance[:-1] + variance[1:]) / 2 * dt
        kappa, rho = self.mean_reversion, self.correlation
        variance_surprise = np.diff(variance) - kappa * self.long_run_variance * dt + kappa * integrated
        increments = (
            self.drift * dt
            - integrated / 2
            + rho / self.vol_of_vol * variance_surprise
            + np.sqrt((1 - rho**2) * integrated) * shocks
        )
        return SimulatedPath(_start_log_path(self.initial_price, increments), {"variance": variance[1:]})


@dataclass(frozen=True)
class MertonJumpDiffusion(PriceProcess):
    """GBM plus Poisson jumps (``jump_intensity`` per year) with normal log sizes.

    ``drift`` is the total expected return: the diffusion drift is compensated
    by jump_intensity * (E[exp(J)] - 1).
    """

    drift: float = 0.0
    volatility: float = 0.5
    jump_intensity: float = 10.0
    jump_mean: float = -0.05
    jump_std: float = 0.1
    initial_price: float = 100.0

    def __post_init__(self) -> None:
        _require_positive(volatility=self.volatility, initial_price=self.initial_price)
        if self.jump_intensity < 0 or self.jump_std < 0:
            raise DataError(f"jump_intensity and jump_std must be >= 0, got {self.jump_intensity}, {self.jump_std}")

    @property
    def annual_volatility(self) -> float:
        jump_variance = self.jump_intensity * (self.jump_mean**2 + self.jump_std**2)
        return math.sqrt(self.volatility**2 + jump_variance)

    def _simulate_path(self, shocks: np.ndarray, dt: float, rng: np.random.Generator) -> SimulatedPath:
        compensator = self.jump_intensity * (math.exp(self.jump_mean + self.jump_std**2 / 2) - 1)
        counts = rng.poisson(self.jump_intensity * dt, len(shocks))
        jumps = self.jump_mean * counts + self.jump_std * np.sqrt(counts) * rng.standard_normal(len(shocks))
        diffusion = (self.drift - compensator - self.volatility**2 / 2) * dt
        increments = diffusion + self.volatility * math.sqrt(dt) * shocks + jumps
        return SimulatedPath(_start_log_path(self.initial_price, increments))


def _correlated_shocks(
    correlation: np.ndarray, symbols: Sequence[str], n_steps: int, rng: np.random.Generator
) -> np.ndarray:
    matrix = np.asarray(correlation, dtype=float)
    if matrix.shape != (len(symbols), len(symbols)):
        raise DataError(f"correlation matrix has shape {matrix.shape}, expected {len(symbols)}x{len(symbols)}")
    if not (np.allclose(matrix, matrix.T) and np.allclose(np.diag(matrix), 1.0)):
        raise DataError("correlation matrix must be symmetric with a unit diagonal")
    try:
        lower = np.linalg.cholesky(matrix)
    except np.linalg.LinAlgError as err:
        raise DataError("correlation matrix is not positive definite") from err
    return rng.standard_normal((n_steps, len(symbols))) @ lower.T


def synthetic_dataset(
    process: PriceProcess | Mapping[str, PriceProcess],
    symbols: Sequence[str],
    n_bars: int,
    timeframe: str = "1h",
    seed: int = 0,
    *,
    correlation: np.ndarray | None = None,
    start: datetime = DEFAULT_START,
    substeps: int = 16,
    volume: VolumeModel | None = None,
    name: str = SYNTHETIC_EXCHANGE,
) -> Dataset:
    """Series for ``symbols`` on the exchange 'synthetic', reproducible by ``seed``.

    ``process`` is one process for every symbol or a mapping symbol -> process.
    Without ``correlation`` the series are independent and each equals
    ``process.simulate(..., seed=child)`` for a child of ``SeedSequence(seed)``.
    With a correlation matrix the diffusion shocks are correlated; jumps and
    Heston variance stay independent per symbol, so those dilute the correlation.
    """
    if not symbols or len({BarKey(SYNTHETIC_EXCHANGE, s, timeframe) for s in symbols}) != len(symbols):
        raise DataError(f"symbols must be a non-empty list of distinct names, got {list(symbols)}")
    processes = process if isinstance(process, Mapping) else dict.fromkeys(symbols, process)
    missing = [s for s in symbols if s not in processes]
    if missing:
        raise DataError(f"no process given for symbol(s) {missing}")
    settings = BarSettings(timeframe, start, substeps, volume or VolumeModel())
    *children, joint = np.random.SeedSequence(seed).spawn(len(symbols) + 1)
    n_steps = _step_count(n_bars, settings)
    shocks = None
    if correlation is not None:
        shocks = _correlated_shocks(correlation, symbols, n_steps, np.random.default_rng(joint))
    series: dict[BarKey, pl.DataFrame] = {}
    for column, (symbol, child) in enumerate(zip(symbols, children, strict=True)):
        rng = np.random.default_rng(child)
        own = rng.standard_normal(n_steps) if shocks is None else shocks[:, column]
        frame = processes[symbol]._bars_from_shocks(own, settings, rng)
        series[BarKey(SYNTHETIC_EXCHANGE, symbol, timeframe)] = frame
    return Dataset(series, name)
