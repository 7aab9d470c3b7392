"""Change detectors: hand-computed statistics, false alarms on stationary series, detection of switches."""

from __future__ import annotations

import logging
import statistics

import numpy as np
import pytest

from features.data.synthetic import GeometricBrownianMotion
from serve.monitoring.alerts import AlertKind
from serve.monitoring.config import AlertsConfig
from serve.monitoring.drift import (
    Cusum,
    DriftAlarm,
    DriftConfig,
    DriftMonitor,
    OnlineStandardizer,
    PageHinkley,
)


def returns(volatility: float, n: int, seed: int) -> np.ndarray:
    close = (
        GeometricBrownianMotion(0.0, volatility).simulate(n + 1, "1h", seed, substeps=1)["close"].to_numpy()
    )
    return np.diff(np.log(close))


def test_cusum_accumulates_excess_over_the_allowance() -> None:
    detector = Cusum(k=0.5, h=3.0)
    assert [detector.update(x) for x in (2.0, 2.0)] == [False, True]
    assert (detector.upper, detector.lower, detector.direction, detector.score) == (3.0, 0.0, 1, 1.0)
    detector.reset()
    assert [detector.update(x) for x in (-1.0, 0.6, -2.0, -2.0)] == [False, False, False, True]
    assert detector.lower == 3.0  # 0.5, then max(0, 0.5 - 0.6 - 0.5) = 0, then 1.5, then 3.0
    assert detector.direction == -1


def test_page_hinkley_against_the_running_mean() -> None:
    detector = PageHinkley(delta=0.0, threshold=7.0, min_samples=1)
    assert [detector.update(x) for x in (0.0, 0.0, 0.0, 10.0)] == [False, False, False, True]
    assert detector.statistic == pytest.approx(7.5)  # 10 - mean 2.5, after three zero increments
    assert detector.direction == 1


def test_standardizer_is_causal_and_winsorises_what_it_learns() -> None:
    standardizer = OnlineStandardizer(warmup=4, halflife=1e9, clip=4.0)
    history = [1.0, 2.0, 3.0, 4.0]
    assert [standardizer.update(x) for x in history] == [None] * 4
    z = standardizer.update(5.0)
    assert z == pytest.approx((5.0 - 2.5) / np.std(history))  # population statistics of the past only
    mean, spread = standardizer.mean, np.sqrt(standardizer.variance)
    assert standardizer.update(1e6) == 4.0  # clipped ...
    assert standardizer.mean == pytest.approx(mean + (4.0 * spread) / 6)  # ... and learnt clipped


def test_false_alarms_on_stationary_series_stay_below_two_percent() -> None:
    config, series, alarmed = DriftConfig(), 60, 0
    for seed in range(series):
        monitor = DriftMonitor(config)
        for r in returns(0.6, config.warmup + 1000, seed):
            monitor.update_return(float(r))
        alarmed += bool(monitor.alarms)
    # calibrated to ~1.2% per 1,000 bars; with p = 2%, P(more than 4 of 60) < 1%
    assert alarmed <= 4


def test_a_volatility_doubling_is_found_within_a_bounded_delay() -> None:
    config, delays, early = DriftConfig(), [], 0
    for seed in range(30):
        series = np.concatenate([returns(0.6, 700, 2 * seed), returns(1.2, 300, 2 * seed + 1)])
        monitor = DriftMonitor(config)
        found = None
        for index, r in enumerate(series):
            if monitor.update_return(float(r)) is not None:
                if index < 700:
                    early += 1
                else:
                    found = index - 700
                    break
        assert found is not None, f"seed {seed}: no alarm within 300 bars of the switch"
        delays.append(found)
    assert early <= 1
    assert max(delays) <= 150
    assert 5 <= statistics.median(delays) <= 40  # the benchmark's median is 18 bars


def test_a_break_notifies_listeners_resets_and_rewarms(caplog: pytest.LogCaptureFixture) -> None:
    config = DriftConfig(warmup=50, rewarm=20)
    monitor, seen = DriftMonitor(config, "binance:BTC/USDT"), list[DriftAlarm]()

    def failing_hook(_: DriftAlarm) -> None:
        raise ConnectionError("serve endpoint down")

    monitor.add_listener(seen.append)
    monitor.add_listener(failing_hook)
    series = np.concatenate([returns(0.5, 100, 1), returns(3.0, 100, 2)])
    with caplog.at_level(logging.ERROR, logger="serve.monitoring.drift"):
        alarm = next(a for r in series if (a := monitor.update_return(float(r))) is not None)
    assert seen == [alarm] and alarm.channel == "volatility" and alarm.direction == 1
    assert "drift break listener" in caplog.text  # logged, not raised
    assert monitor.score == 0.0  # detectors reset
    assert all(c.standardizer.warmup == 20 and c.standardizer.count == 0 for c in monitor.channels)
    alert = alarm.to_alert()
    assert alert.kind is AlertKind.DRIFT and alert.instrument == "binance:BTC/USDT"
    assert alert.text().startswith("[WARNING] drift binance:BTC/USDT: structural break: volatility rose")


def test_prices_feed_log_returns() -> None:
    monitor = DriftMonitor(DriftConfig(warmup=3))
    for close in (100.0, 110.0, 99.0, 99.0):
        monitor.update_price(close)
    assert monitor.bars == 3
    assert monitor.channels[0].standardizer.mean == pytest.approx(np.mean(np.log([1.1, 0.9, 1.0])))


def test_shipped_yaml_matches_the_calibrated_defaults() -> None:
    assert AlertsConfig.load("default").drift == DriftConfig()
