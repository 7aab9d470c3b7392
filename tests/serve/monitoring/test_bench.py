"""The drift benchmark's building blocks on a few seeds (full run: python -m serve.monitoring.bench_drift)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from features.data.synthetic import GeometricBrownianMotion
from serve.monitoring.bench_data import DEPEG_ONSET_DEVIATION, price_ratio
from serve.monitoring.bench_drift import calibrate, switch_delays
from serve.monitoring.drift import DriftConfig


def test_calibration_on_few_seeds_lands_near_the_shipped_thresholds() -> None:
    shipped = DriftConfig()
    calibrated = calibrate(shipped, range(10_000, 10_060))
    assert calibrated.returns.threshold == pytest.approx(shipped.returns.threshold, rel=0.35)
    assert calibrated.volatility.threshold == pytest.approx(shipped.volatility.threshold, rel=0.35)


def test_switch_delays_summarise_detections() -> None:
    gbm = GeometricBrownianMotion
    result = switch_delays(gbm(0.0, 0.6), gbm(0.0, 1.8), DriftConfig(), range(5))
    assert result.missed == 0.0 and result.early == 0.0
    assert 1 <= result.median <= 40


def test_the_usdc_depeg_onset_in_the_bundled_minute_data() -> None:
    ratio = price_ratio("binanceus_btc_1m", "BTC/USDC", "BTC/USD")
    off = ratio.filter((ratio["close"] - 1).abs() > DEPEG_ONSET_DEVIATION)
    assert off["timestamp"][0] == datetime(2023, 3, 11, 2, 8, tzinfo=UTC)
    assert ratio["close"].to_numpy().max() > 1.1  # USDC fell below 0.91 USD
