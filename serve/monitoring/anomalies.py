"""Data anomalies: stale feeds, missing bars, price spikes and bursts of exchange errors.

Every detector is causal (it judges a bar only by what came before it) and
raises one alert per episode rather than one per bar:

* :class:`BarAnomalyMonitor` checks each new closed bar of one instrument for
  a gap in timestamps (missing bars), a bar not after the previous one, and a
  price spike: ``|log return - median| > threshold * 1.4826 * MAD`` of the
  non-zero returns among the last ``spike_window`` (zero returns are bars
  without trades, which would shrink the MAD of an illiquid pair to nothing;
  the scale is floored at half the interquartile-range estimate for
  tick-bound prices, whose returns form two tight clusters);
  :meth:`BarAnomalyMonitor.check_stale` alerts when no new bar has closed for
  ``stale_after_bars`` bar lengths past the expected close;
* :class:`ExchangeErrorMonitor` alerts when more than ``max_errors`` exchange
  calls failed within ``error_window_seconds``, and re-arms once the count
  falls to half of that.
"""

from __future__ import annotations

import math
import time as clock
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from features.data.schema import DataError, parse_timeframe
from serve.execution.records import require_utc, utc_now
from serve.monitoring.alerts import Alert, AlertKind, Severity

_MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this is its standard deviation
_IQR_TO_SIGMA = 1.349  # interquartile range of a normal distribution over its standard deviation


@dataclass(frozen=True)
class AnomalyConfig:
    """Thresholds of the data-anomaly detectors (calibrated on the bundled data, see docs/monitoring.md)."""

    stale_after_bars: float = 2.0  # alert when the next bar is this many bar lengths overdue
    spike_window: int = 240  # past returns in the robust scale
    spike_min_history: int = 60  # no spike verdicts before this many non-zero returns in the window
    spike_threshold: float = 12.0  # |log return| above this many robust standard deviations is a spike
    error_window_seconds: float = 300.0  # sliding window of the exchange error count
    max_errors: int = 5  # more failed calls than this inside the window raise an alert

    def __post_init__(self) -> None:
        if self.stale_after_bars <= 0 or self.spike_threshold <= 0 or self.error_window_seconds <= 0:
            raise DataError("stale_after_bars, spike_threshold and error_window_seconds must be positive")
        if not 2 <= self.spike_min_history <= self.spike_window or self.max_errors < 1:
            raise DataError("need 2 <= spike_min_history <= spike_window and max_errors >= 1")


class SpikeDetector:
    """Robust z-score of a log return against the non-zero returns among the previous ``window``.

    Zero returns are bars without a trade (the price carried forward); on an
    illiquid pair they are most bars and would shrink the MAD to nothing, so
    the centre and scale come from the returns that did move.
    """

    def __init__(self, window: int, min_history: int, threshold: float) -> None:
        self.threshold, self.min_history = threshold, min_history
        self.history: deque[float] = deque(maxlen=window)

    def update(self, log_return: float) -> float | None:
        """The return's robust z-score (None until ``min_history`` returns moved), then learn it."""
        z = None
        past = np.fromiter(self.history, float, len(self.history))
        moved = np.sort(past[past != 0.0])
        if len(moved) >= self.min_history:
            center = _sorted_median(moved)
            # Tick-bound prices give two clusters of returns whose MAD is ~0; half the interquartile-range
            # sigma floors the scale there, is as robust to outliers, and never binds for bell shapes.
            last = len(moved) - 1
            floor = 0.5 * float(moved[round(0.75 * last)] - moved[round(0.25 * last)]) / _IQR_TO_SIGMA
            scale = max(_MAD_TO_SIGMA * _sorted_median(np.sort(np.abs(moved - center))), floor)
            z = (log_return - center) / scale if scale > 0 else None
        self.history.append(log_return)
        return z

    def is_spike(self, z: float | None) -> bool:
        return z is not None and abs(z) > self.threshold


def _sorted_median(values: np.ndarray) -> float:
    n = len(values)
    return float(values[n // 2]) if n % 2 else 0.5 * float(values[n // 2 - 1] + values[n // 2])


class BarAnomalyMonitor:
    """Gap, order and spike checks on the closed bars of one instrument, plus the stale-feed check."""

    def __init__(self, instrument: str, timeframe: str, config: AnomalyConfig | None = None) -> None:
        self.instrument, self.config = instrument, config or AnomalyConfig()
        self.bar = parse_timeframe(timeframe)
        self.spikes = SpikeDetector(
            self.config.spike_window, self.config.spike_min_history, self.config.spike_threshold
        )
        self.last_time: datetime | None = None
        self.last_close: float | None = None
        self._stale_reported = False

    def on_bar(self, bar_time: datetime, close: float) -> list[Alert]:
        """Check a newly closed bar (``bar_time`` = open time); returns its alerts, usually none."""
        bar_time = require_utc(bar_time, f"bar time of {self.instrument}")
        if not (math.isfinite(close) and close > 0):
            return [
                self._alert(
                    AlertKind.PRICE_SPIKE,
                    f"invalid close {close} at {bar_time:%Y-%m-%d %H:%M}",
                    bar_time,
                    Severity.CRITICAL,
                    close,
                )
            ]
        alerts: list[Alert] = []
        if self.last_time is not None and bar_time <= self.last_time:
            return [
                self._alert(
                    AlertKind.OUT_OF_ORDER,
                    f"bar {bar_time:%Y-%m-%d %H:%M} is not after {self.last_time:%Y-%m-%d %H:%M}; ignored",
                    bar_time,
                )
            ]
        if self.last_time is not None and bar_time - self.last_time > self.bar:
            missing = round((bar_time - self.last_time) / self.bar) - 1
            alerts.append(
                self._alert(
                    AlertKind.MISSING_BARS,
                    f"{missing} bar(s) missing between "
                    f"{self.last_time:%Y-%m-%d %H:%M} and {bar_time:%Y-%m-%d %H:%M}",
                    bar_time,
                    value=float(missing),
                )
            )
        if self.last_close is not None:
            z = self.spikes.update(math.log(close / self.last_close))
            if self.spikes.is_spike(z):
                assert z is not None
                alerts.append(
                    self._alert(
                        AlertKind.PRICE_SPIKE,
                        f"close {close:g} after {self.last_close:g} is {z:+.1f} robust standard deviations",
                        bar_time,
                        value=z,
                    )
                )
        self.last_time, self.last_close, self._stale_reported = bar_time, close, False
        return alerts

    def check_stale(self, now: datetime | None = None) -> Alert | None:
        """Call on a timer: one alert when the next bar is overdue, again only after a bar has arrived."""
        if self.last_time is None or self._stale_reported:
            return None
        now = require_utc(now or utc_now(), "now")
        expected_close = self.last_time + 2 * self.bar  # the bar after the last one closes then
        overdue = (now - expected_close) / self.bar
        if overdue < self.config.stale_after_bars:
            return None
        self._stale_reported = True
        return self._alert(
            AlertKind.STALE_BARS,
            f"no new bar since {self.last_time:%Y-%m-%d %H:%M} ({overdue:.1f} bar lengths overdue)",
            now,
            Severity.CRITICAL,
            overdue,
        )

    def _alert(
        self,
        kind: AlertKind,
        message: str,
        when: datetime,
        severity: Severity = Severity.WARNING,
        value: float | None = None,
    ) -> Alert:
        return Alert(kind, message, severity, self.instrument, when, value)


class ExchangeErrorMonitor:
    """Counts failed exchange calls in a sliding window; alerts once per burst (with hysteresis)."""

    def __init__(self, exchange: str, config: AnomalyConfig | None = None) -> None:
        self.exchange, self.config = exchange, config or AnomalyConfig()
        self.errors: deque[float] = deque()
        self.calls = 0
        self._alerting = False

    def record(self, ok: bool, error: str = "", now: float | None = None) -> Alert | None:
        """Record one call (``now``: monotonic seconds by default); returns an alert on a new burst."""
        now = clock.monotonic() if now is None else now
        self.calls += 1
        if not ok:
            self.errors.append(now)
        while self.errors and now - self.errors[0] > self.config.error_window_seconds:
            self.errors.popleft()
        count, limit = len(self.errors), self.config.max_errors
        if self._alerting and count <= limit // 2:
            self._alerting = False
        if self._alerting or count <= limit:
            return None
        self._alerting = True
        window = timedelta(seconds=self.config.error_window_seconds)
        detail = f"; last: {error}" if error else ""
        return Alert(
            AlertKind.EXCHANGE_ERRORS,
            f"{count} failed calls to {self.exchange} within {window}{detail}",
            Severity.CRITICAL,
            None,
            utc_now(),
            float(count),
        )
