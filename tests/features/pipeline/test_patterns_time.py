"""Support/resistance, chart patterns and calendar features against hand-worked examples."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from features.data.schema import BarKey, Dataset
from features.pipeline.config import FeatureConfig
from features.pipeline.pipeline import FeaturePipeline

OFF = {g: {"enabled": False} for g in
       ("indicators", "volume", "returns", "patterns", "time", "microstructure", "cross_asset")}
HIGHS = [1.0, 2.0, 3.0, 5.0, 4.0, 3.0, 6.0, 2.0, 1.0, 2.0]
LOWS = [0.5, 1.5, 2.5, 4.5, 3.5, 2.5, 5.5, 1.5, 0.5, 1.5]


def series(highs: list[float], lows: list[float], start: datetime = datetime(2024, 1, 1, tzinfo=UTC),
           step: timedelta = timedelta(hours=1)) -> Dataset:
    close = [(h + low) / 2 for h, low in zip(highs, lows, strict=True)]
    frame = pl.DataFrame({"timestamp": [start + i * step for i in range(len(highs))], "open": close,
                          "high": highs, "low": lows, "close": close, "volume": 1.0},
                         schema_overrides={"timestamp": pl.Datetime("us", "UTC")})
    return Dataset({BarKey("test", "BTC/USDT", "1h"): frame})


def compute(config: dict[str, object], data: Dataset) -> pl.DataFrame:
    return FeaturePipeline(FeatureConfig.from_dict({**OFF, **config})).transform(data, normalise=False)[data.keys[0]]


def test_support_and_resistance_from_confirmed_pivots() -> None:
    frame = compute({"patterns": {"enabled": True, "candles": [], "pivots": [1], "breakout": [], "hhll": []}},
                    series(HIGHS, LOWS))
    # worked by hand: a pivot high at bar 3 (5.0) is confirmed at bar 4, one at bar 6 (6.0) at bar 7; before
    # the first one the level is the highest high of the last 3 bars.  Pivot lows: bar 5 (2.5), bar 8 (0.5).
    resistance = [3.0, 5.0, 5.0, 5.0, 5.0, 6.0, 6.0, 6.0]
    support = [0.5, 1.5, 2.5, 2.5, 2.5, 2.5, 2.5, 0.5]
    close = np.array([(h + low) / 2 for h, low in zip(HIGHS, LOWS, strict=True)])[2:]
    assert frame["sr_res_dist_1"].head(2).null_count() == 2
    np.testing.assert_allclose(frame["sr_res_dist_1"].to_numpy()[2:], np.log(np.array(resistance) / close))
    np.testing.assert_allclose(frame["sr_sup_dist_1"].to_numpy()[2:], np.log(close / np.array(support)))
    np.testing.assert_allclose(frame["sr_pos_1"].to_numpy()[2:],
                               (close - np.array(support)) / (np.array(resistance) - np.array(support)))
    assert frame["swing_high_1"].to_list()[2:] == [0, 0, 0, 0, 0, 1, 1, 1]  # 6 after 5: a higher high
    assert frame["swing_low_1"].to_list()[2:] == [0, 0, 0, 0, 0, 0, 0, -1]  # 0.5 after 2.5: a lower low


def reference_breakout(highs: list[float], lows: list[float], n: int) -> tuple[list[float], list[float]]:
    close = [(h + low) / 2 for h, low in zip(highs, lows, strict=True)]
    signal, position = [], []
    for t in range(n, len(highs)):
        before_high, before_low = max(highs[t - n:t]), min(lows[t - n:t])
        signal.append(1.0 if close[t] > before_high else -1.0 if close[t] < before_low else 0.0)
        high, low = max(highs[t - n + 1:t + 1]), min(lows[t - n + 1:t + 1])
        position.append((close[t] - low) / (high - low) if high > low else 0.5)
    return signal, position


def test_breakouts_range_position_and_higher_highs() -> None:
    frame = compute({"patterns": {"enabled": True, "candles": [], "pivots": [], "breakout": [3], "hhll": [3]}},
                    series(HIGHS, LOWS))
    signal, position = reference_breakout(HIGHS, LOWS, 3)
    assert frame["breakout_3"].to_list()[3:] == signal
    assert signal.count(1.0) >= 1 and signal.count(-1.0) >= 1
    np.testing.assert_allclose(frame["range_pos_3"].to_numpy()[3:], position)
    steps = [(h > hp) - (lo < lp) for h, hp, lo, lp in zip(HIGHS[1:], HIGHS, LOWS[1:], LOWS, strict=False)]
    expected = [sum(steps[t - 3:t]) / 3 for t in range(3, len(steps) + 1)]
    np.testing.assert_allclose(frame["hhll_3"].to_numpy()[3:], expected)


def test_calendar_features() -> None:
    start = datetime(2024, 1, 5, 22, 0, tzinfo=UTC)  # a Friday
    data = series([2.0] * 6, [1.0] * 6, start=start, step=timedelta(hours=3, minutes=30))
    frame = compute({"time": {"enabled": True}}, data)
    for row in frame.iter_rows(named=True):
        ts: datetime = row["timestamp"]
        hour = ts.hour + ts.minute / 60
        assert row["hour_sin"] == pytest.approx(math.sin(2 * math.pi * hour / 24), abs=1e-12)
        assert row["hour_cos"] == pytest.approx(math.cos(2 * math.pi * hour / 24), abs=1e-12)
        assert row["dow_sin"] == pytest.approx(math.sin(2 * math.pi * ts.weekday() / 7), abs=1e-12)
        assert row["dow_cos"] == pytest.approx(math.cos(2 * math.pi * ts.weekday() / 7), abs=1e-12)
        assert row["session_asia"] == float(ts.hour < 9)
        assert row["session_europe"] == float(7 <= ts.hour < 16)
        assert row["session_america"] == float(13 <= ts.hour < 22)
    assert frame["session_asia"].sum() >= 1 and frame["session_america"].sum() >= 1
