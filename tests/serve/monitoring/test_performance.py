"""Rolling Sharpe and drawdown alerts: values, and one alert per crossing (hysteresis)."""

from __future__ import annotations

import math
import statistics
from datetime import UTC, datetime, timedelta

import pytest

from features.data.schema import DataError
from serve.monitoring.alerts import AlertKind
from serve.monitoring.performance import (
    Drawdown,
    HysteresisTrigger,
    PerformanceConfig,
    PerformanceMonitor,
    RollingSharpe,
)

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def test_rolling_sharpe_matches_the_textbook_formula_on_its_window() -> None:
    sharpe = RollingSharpe(window=4, periods_per_year=8760, min_periods=3)
    values = [0.01, -0.005, 0.002, 0.004, -0.001]
    assert math.isnan(sharpe.update(values[0])) and math.isnan(sharpe.update(values[1]))
    for value in values[2:]:
        sharpe.update(value)
    window = values[-4:]
    expected = statistics.mean(window) / statistics.stdev(window) * math.sqrt(8760)
    assert sharpe.value == pytest.approx(expected)


def test_drawdown_from_the_running_peak() -> None:
    drawdown = Drawdown()
    assert [drawdown.update(e) for e in (100.0, 110.0, 99.0, 120.0, 108.0)] == pytest.approx(
        [0.0, 0.0, 0.1, 0.0, 0.1]
    )


def test_hysteresis_fires_once_per_crossing() -> None:
    trigger = HysteresisTrigger(1.0, 0.25, bad_when_below=True)
    values = [1.5, 0.9, 0.8, 1.1, 0.95, 1.3, 0.9, math.nan]
    assert [i for i, v in enumerate(values) if trigger.update(v)] == [1, 6]
    above = HysteresisTrigger(0.10, 0.02, bad_when_below=False)
    assert [i for i, v in enumerate([0.05, 0.10, 0.12, 0.09, 0.11, 0.07, 0.10]) if above.update(v)] == [1, 6]


def test_monitor_alerts_once_when_drawdown_passes_its_limit() -> None:
    monitor = PerformanceMonitor(PerformanceConfig(max_drawdown=0.10, drawdown_hysteresis=0.02))
    path = [100.0, 95.0, 89.0, 88.0, 89.5, 91.0, 93.0, 89.0]  # 11%, hovers, recovers to 7%, 11% again
    alerts = [(i, a) for i, e in enumerate(path) for a in monitor.update(e, T0 + timedelta(hours=i))]
    assert [i for i, _ in alerts] == [2, 7]
    assert alerts[0][1].kind is AlertKind.DRAWDOWN
    assert alerts[0][1].message == "drawdown 11.0% from peak 100.00 reached the limit 10.0%"


@pytest.mark.parametrize(("hysteresis", "expected"), [(2.0, 1), (0.25, 2)])
def test_monitor_alerts_once_per_sharpe_crossing(hysteresis: float, expected: int) -> None:
    config = PerformanceConfig(
        sharpe_window=48,
        sharpe_min_periods=24,
        min_sharpe=1.0,
        sharpe_hysteresis=hysteresis,
        max_drawdown=0.5,
    )
    monitor, equity, alerts = PerformanceMonitor(config), 100.0, []
    returns = [0.002 if i % 2 else 0.0 for i in range(48)] + [-0.001 if i % 3 else 0.001 for i in range(96)]
    for i, r in enumerate(returns):
        equity *= 1 + r
        alerts += monitor.update(equity, T0 + timedelta(hours=i))
    # The rolling Sharpe ratio falls from ~92 through 0.0, bounces to 1.7, then stays below -3 for 50+ bars:
    # a 2.0 margin never re-arms (one alert), a 0.25 margin re-arms on the bounce (two alerts).
    sharpes = [a for a in alerts if a.kind is AlertKind.LOW_SHARPE]
    assert len(sharpes) == expected
    assert sharpes[0].value == pytest.approx(0.0, abs=0.05)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(DataError):
        PerformanceConfig(sharpe_window=10, sharpe_min_periods=20)
    with pytest.raises(DataError):
        PerformanceMonitor().update(-1.0, T0)
