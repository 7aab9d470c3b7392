"""Data-anomaly detectors on hand-made bars."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from features.data.schema import DataError
from serve.monitoring.alerts import AlertKind, Severity
from serve.monitoring.anomalies import AnomalyConfig, BarAnomalyMonitor, ExchangeErrorMonitor, SpikeDetector

T0 = datetime(2024, 3, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
SCALE = 1.4826 * 0.01  # robust sd of returns alternating +-1%: median 0, MAD 0.01


def alternating(count: int) -> list[float]:
    return [0.01 if i % 2 else -0.01 for i in range(count)]


def test_missing_bars_are_counted_from_the_timestamp_gap() -> None:
    monitor = BarAnomalyMonitor("kraken:BTC/USD", "1h")
    assert monitor.on_bar(T0, 100.0) == []
    assert monitor.on_bar(T0 + HOUR, 100.5) == []
    (alert,) = monitor.on_bar(T0 + 4 * HOUR, 101.0)
    assert (alert.kind, alert.value, alert.instrument) == (AlertKind.MISSING_BARS, 2.0, "kraken:BTC/USD")
    assert alert.message == "2 bar(s) missing between 2024-03-01 01:00 and 2024-03-01 04:00"


def test_a_bar_not_after_the_previous_one_is_reported_and_ignored() -> None:
    monitor = BarAnomalyMonitor("x", "1h")
    monitor.on_bar(T0 + HOUR, 100.0)
    (alert,) = monitor.on_bar(T0 + HOUR, 250.0)
    assert alert.kind is AlertKind.OUT_OF_ORDER
    assert (monitor.last_time, monitor.last_close) == (T0 + HOUR, 100.0)


def test_spike_threshold_in_robust_standard_deviations() -> None:
    detector = SpikeDetector(window=240, min_history=60, threshold=12.0)
    for r in alternating(100):
        detector.update(r)
    z_big = detector.update(0.2)
    assert z_big == pytest.approx(0.2 / SCALE)  # 13.49
    assert detector.is_spike(z_big)
    detector.history.pop()
    z_small = detector.update(0.15)
    assert z_small == pytest.approx(0.15 / SCALE)  # 10.12
    assert not detector.is_spike(z_small)


def test_zero_returns_do_not_shrink_the_scale() -> None:
    detector = SpikeDetector(window=240, min_history=60, threshold=12.0)
    for r in [0.0] * 150 + alternating(70):
        detector.update(r)
    assert detector.update(0.2) == pytest.approx(0.2 / SCALE)  # scale from the 70 returns that moved
    sparse = SpikeDetector(window=240, min_history=60, threshold=12.0)
    for r in [0.0] * 150 + alternating(50):
        sparse.update(r)
    assert sparse.update(0.5) is None  # only 50 moved: no verdict


def test_spike_alert_from_bars() -> None:
    monitor = BarAnomalyMonitor("x", "1m")
    close = 100.0
    monitor.on_bar(T0, close)
    for i, r in enumerate(alternating(80)):
        close *= math.exp(r)
        assert monitor.on_bar(T0 + (i + 1) * timedelta(minutes=1), close) == []
    (alert,) = monitor.on_bar(T0 + 81 * timedelta(minutes=1), close * math.exp(-0.25))
    assert alert.kind is AlertKind.PRICE_SPIKE and alert.value == pytest.approx(-0.25 / SCALE)
    (invalid,) = monitor.on_bar(T0 + 82 * timedelta(minutes=1), float("nan"))
    assert invalid.severity is Severity.CRITICAL and "invalid close" in invalid.message


def test_stale_feed_alerts_once_until_a_bar_arrives() -> None:
    monitor = BarAnomalyMonitor("x", "1h", AnomalyConfig(stale_after_bars=2.0))
    assert monitor.check_stale(T0) is None  # nothing seen yet
    monitor.on_bar(T0 + 10 * HOUR, 100.0)  # closes at 11:00; the next bar closes at 12:00
    assert monitor.check_stale(T0 + 13 * HOUR + timedelta(minutes=59)) is None  # 1.98 bars overdue
    alert = monitor.check_stale(T0 + 14 * HOUR)
    assert alert is not None and (alert.kind, alert.value) == (AlertKind.STALE_BARS, 2.0)
    assert monitor.check_stale(T0 + 20 * HOUR) is None  # once per episode
    monitor.on_bar(T0 + 11 * HOUR, 100.0)
    assert monitor.check_stale(T0 + 15 * HOUR) is not None  # re-armed by the new bar


def test_exchange_error_bursts_alert_with_hysteresis() -> None:
    monitor = ExchangeErrorMonitor("binance", AnomalyConfig(error_window_seconds=60.0, max_errors=3))
    fired = [monitor.record(False, "HTTP 503", now=t) for t in (0.0, 1.0, 2.0)]
    assert fired == [None, None, None]
    burst = monitor.record(False, "HTTP 503", now=3.0)
    assert burst is not None and burst.message == "4 failed calls to binance within 0:01:00; last: HTTP 503"
    assert monitor.record(False, now=4.0) is None  # same burst
    assert monitor.record(True, now=63.5) is None  # 1 error left in the window: re-armed
    for t in (64.0, 65.0, 66.0):
        assert monitor.record(False, now=t) is None
    assert monitor.record(False, now=66.5) is not None  # a new burst
    assert monitor.calls == 10


def test_bad_config_is_refused() -> None:
    with pytest.raises(DataError):
        AnomalyConfig(spike_min_history=500, spike_window=240)


def test_tick_bound_returns_floor_the_scale() -> None:
    detector = SpikeDetector(window=240, min_history=60, threshold=12.0)
    for r in alternating(61):  # 31 x -1%, 30 x +1%: median -1%, MAD exactly 0
        detector.update(r)
    floor = 0.5 * 0.02 / 1.349  # half the sigma of the interquartile range (-1% to +1%)
    z = detector.update(0.01)
    assert z == pytest.approx(0.02 / floor)  # 2.7: an ordinary one-tick move, not a spike
    assert not detector.is_spike(z)
