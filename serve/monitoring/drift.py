"""Structural breaks in a market's returns and volatility: sequential change detectors.

A :class:`DriftMonitor` watches one instrument through two channels, each a
causal standardisation followed by a two-sided :class:`ChangeDetector`:

* ``returns``: the bar log return, standardised by a baseline mean and
  standard deviation learnt from past bars (detects a change in drift);
* ``volatility``: the absolute log return, standardised the same way (detects
  a change in volatility; |r| shifts by 1.3 of its own standard deviations
  when volatility doubles, against 0.6 for log r^2, and has no -inf at r = 0).

Standardised inputs are clipped to +-``clip`` so one outlier cannot raise an
alarm on its own.  The baseline is an expanding mean for the first bars, then
exponentially weighted with a long half-life, and learns only from bars that
were already tested (strictly causal).  After an alarm the monitor calls its
listeners (e.g. the hook that resets the agents' recurrent state through the
serve endpoint), then restarts: a fresh warm-up learns the new regime.

Thresholds are calibrated by ``python -m serve.monitoring.bench_drift``: each
channel's is the 99.5th percentile of its statistic's maximum over stationary
1,000-bar GBM series, rounded up, so about 1% of such series raise a false
alarm (target: at most 2%); see
docs/monitoring.md for the figures.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from features.data.schema import DataError
from serve.execution.records import utc_now
from serve.monitoring.alerts import Alert, AlertKind, Severity

log = logging.getLogger(__name__)


class ChangeDetector(ABC):
    """Sequential two-sided change detector on a standardised stream."""

    threshold: float
    direction: int = 0  # +1 if the last alarm was an upward change, -1 downward, 0 none

    @abstractmethod
    def update(self, x: float) -> bool:
        """Feed one observation; True when the statistic reaches the threshold."""

    @property
    @abstractmethod
    def statistic(self) -> float:
        """Current alarm statistic (larger = more evidence of change)."""

    @property
    def score(self) -> float:
        """Statistic over threshold: 1.0 or more means alarm."""
        return self.statistic / self.threshold

    @abstractmethod
    def reset(self) -> None:
        """Forget all evidence (after an alarm or a regime the operator accepted)."""


class Cusum(ChangeDetector):
    """Page's two-sided CUSUM: S+ = max(0, S+ + x - k), S- = max(0, S- - x - k); alarm when either >= h.

    ``k`` is the allowance (half the shift to detect, in standard deviations),
    ``h`` the decision threshold.
    """

    def __init__(self, k: float = 0.5, h: float = 10.0) -> None:
        if not (k >= 0 and h > 0):
            raise DataError(f"CUSUM needs k >= 0 and h > 0, got k={k}, h={h}")
        self.k, self.threshold = k, h
        self.upper = self.lower = 0.0

    def update(self, x: float) -> bool:
        self.upper = max(0.0, self.upper + x - self.k)
        self.lower = max(0.0, self.lower - x - self.k)
        if self.statistic >= self.threshold:
            self.direction = 1 if self.upper >= self.lower else -1
            return True
        return False

    @property
    def statistic(self) -> float:
        return max(self.upper, self.lower)

    def reset(self) -> None:
        self.upper = self.lower = 0.0
        self.direction = 0


class PageHinkley(ChangeDetector):
    """Two-sided Page-Hinkley test against the running mean since the last reset.

    m+ accumulates x - mean - delta and alarms when it rises ``threshold`` above
    its minimum; m- does the same for downward changes.
    """

    def __init__(self, delta: float = 0.25, threshold: float = 25.0, min_samples: int = 30) -> None:
        if not (delta >= 0 and threshold > 0 and min_samples >= 1):
            raise DataError(
                f"Page-Hinkley needs delta >= 0, threshold > 0, min_samples >= 1; got "
                f"{delta}, {threshold}, {min_samples}"
            )
        self.delta, self.threshold, self.min_samples = delta, threshold, min_samples
        self.count, self.mean = 0, 0.0
        self.up_sum = self.down_sum = self.up_min = self.down_min = 0.0

    def update(self, x: float) -> bool:
        self.count += 1
        self.mean += (x - self.mean) / self.count
        self.up_sum += x - self.mean - self.delta
        self.down_sum += self.mean - x - self.delta
        self.up_min = min(self.up_min, self.up_sum)
        self.down_min = min(self.down_min, self.down_sum)
        if self.count >= self.min_samples and self.statistic >= self.threshold:
            self.direction = 1 if self.up_sum - self.up_min >= self.down_sum - self.down_min else -1
            return True
        return False

    @property
    def statistic(self) -> float:
        return max(self.up_sum - self.up_min, self.down_sum - self.down_min)

    def reset(self) -> None:
        self.count, self.mean = 0, 0.0
        self.up_sum = self.down_sum = self.up_min = self.down_min = 0.0
        self.direction = 0


class OnlineStandardizer:
    """Causal z-score of a stream against a baseline learnt from earlier values only.

    The baseline mean and variance are expanding averages at first, then
    exponentially weighted with ``halflife``.  ``update`` returns None until
    ``warmup`` values have been learnt (``reset`` can set a shorter warm-up);
    afterwards each value is learnt winsorised at +-``clip`` baseline standard
    deviations, so a single extreme bar cannot blow up the baseline.
    """

    def __init__(self, warmup: int, halflife: float, clip: float) -> None:
        if warmup < 2 or halflife <= 0 or clip <= 0:
            raise DataError(
                f"standardizer needs warmup >= 2, halflife > 0, clip > 0; got {warmup}, {halflife}, {clip}"
            )
        self.clip = clip
        self.alpha = 1.0 - 0.5 ** (1.0 / halflife)
        self.warmup, self.count, self.mean, self.variance = warmup, 0, 0.0, 0.0

    def update(self, x: float) -> float | None:
        z = None
        if self.count >= self.warmup:
            spread = math.sqrt(self.variance)
            z = 0.0 if spread == 0 else min(self.clip, max(-self.clip, (x - self.mean) / spread))
            x = (
                self.mean + z * spread
            )  # learn the winsorised value: one crash bar must not inflate the baseline
        self.count += 1
        weight = max(1.0 / self.count, self.alpha)
        delta = x - self.mean
        self.mean += weight * delta
        self.variance = (1.0 - weight) * (self.variance + weight * delta * delta)
        return z

    def reset(self, warmup: int) -> None:
        if warmup < 2:
            raise DataError(f"standardizer warm-up must be at least 2 values, got {warmup}")
        self.warmup, self.count, self.mean, self.variance = warmup, 0, 0.0, 0.0


@dataclass(frozen=True)
class DetectorSpec:
    """A detector by name: CUSUM (drift = k, threshold = h) or Page-Hinkley (drift = delta)."""

    method: Literal["cusum", "page_hinkley"] = "cusum"
    drift: float = 0.5  # allowance per observation, in standard deviations
    threshold: float = 10.0  # decision threshold on the statistic

    def build(self) -> ChangeDetector:
        if self.method == "cusum":
            return Cusum(self.drift, self.threshold)
        if self.method == "page_hinkley":
            return PageHinkley(self.drift, self.threshold)
        raise DataError(f"unknown change detector {self.method!r}: use cusum or page_hinkley")


@dataclass(frozen=True)
class DriftConfig:
    """Drift monitoring of one instrument; defaults calibrated by serve.monitoring.bench_drift."""

    warmup: int = 200  # bars that learn the baseline at start, before any alarm can fire
    rewarm: int = 48  # bars that re-learn it after an alarm (the detector is blind meanwhile)
    halflife: float = 1000.0  # bars: how slowly the baseline follows the market afterwards
    clip: float = 4.0  # standardised inputs are clipped to +-clip
    returns: DetectorSpec = field(default_factory=lambda: DetectorSpec("cusum", 0.25, 19.5))  # drift changes
    volatility: DetectorSpec = field(
        default_factory=lambda: DetectorSpec("cusum", 0.5, 13.0)
    )  # volatility changes


@dataclass(frozen=True)
class DriftAlarm:
    instrument: str
    channel: str  # returns or volatility
    direction: int  # +1 up (higher mean / volatility), -1 down
    bar: int  # bars seen by the monitor when it fired (counting from 1)
    time: datetime | None
    score: float

    def to_alert(self) -> Alert:
        change = "rose" if self.direction > 0 else "fell"
        what = "mean return" if self.channel == "returns" else "volatility"
        return Alert(
            AlertKind.DRIFT,
            f"structural break: {what} {change} (score {self.score:.2f}); agent memory reset",
            Severity.WARNING,
            self.instrument or None,
            self.time or utc_now(),
            self.score,
        )


BreakListener = Callable[[DriftAlarm], None]


class _Channel:
    def __init__(self, name: str, config: DriftConfig, spec: DetectorSpec) -> None:
        self.name = name
        self.standardizer = OnlineStandardizer(config.warmup, config.halflife, config.clip)
        self.detector = spec.build()

    def update(self, x: float) -> bool:
        z = self.standardizer.update(x)
        return z is not None and self.detector.update(z)

    def reset(self, warmup: int) -> None:
        self.standardizer.reset(warmup)
        self.detector.reset()


class DriftMonitor:
    """Returns and volatility change detection for one instrument, with break listeners."""

    def __init__(self, config: DriftConfig | None = None, instrument: str = "") -> None:
        self.config = config or DriftConfig()
        self.instrument = instrument
        self.channels = (
            _Channel("returns", self.config, self.config.returns),
            _Channel("volatility", self.config, self.config.volatility),
        )
        self._listeners: list[BreakListener] = []
        self._last_price: float | None = None
        self.bars = 0
        self.alarms: list[DriftAlarm] = []

    def add_listener(self, listener: BreakListener) -> None:
        """Call ``listener(alarm)`` on every break, e.g. to reset the agents' recurrent state."""
        self._listeners.append(listener)

    @property
    def score(self) -> float:
        """Largest channel score (1.0 = alarm); 0 during warm-up. Exported as the drift score metric."""
        return max(c.detector.score for c in self.channels)

    def update_price(self, close: float, time: datetime | None = None) -> DriftAlarm | None:
        """Feed a bar close; the first close only sets the reference."""
        if not (math.isfinite(close) and close > 0):
            raise DataError(
                f"drift monitor {self.instrument}: close must be positive and finite, got {close}"
            )
        previous, self._last_price = self._last_price, close
        return None if previous is None else self.update_return(math.log(close / previous), time)

    def update_return(self, log_return: float, time: datetime | None = None) -> DriftAlarm | None:
        self.bars += 1
        returns, volatility = self.channels
        fired = [c for c, x in ((returns, log_return), (volatility, abs(log_return))) if c.update(x)]
        if not fired:
            return None
        channel = max(fired, key=lambda c: c.detector.score)
        alarm = DriftAlarm(
            self.instrument, channel.name, channel.detector.direction, self.bars, time, channel.detector.score
        )
        self.alarms.append(alarm)
        self.reset(self.config.rewarm)
        self._notify(alarm)
        return alarm

    def reset(self, warmup: int | None = None) -> None:
        """Start over: a new warm-up (default: the full one) learns the baseline of the new regime."""
        for channel in self.channels:
            channel.reset(self.config.warmup if warmup is None else warmup)

    def _notify(self, alarm: DriftAlarm) -> None:
        for listener in self._listeners:
            try:
                listener(alarm)
            except Exception:  # a failing hook must never stop monitoring or trading
                log.exception("drift break listener %r failed for %s", listener, alarm)
