"""Normalisation: rolling z-scores against numpy, bounded maps, and a scaler fitted on the training split only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from features.data.schema import DataError, Dataset
from features.pipeline.config import FeatureConfig
from features.pipeline.pipeline import FeaturePipeline
from tests.features.pipeline.conftest import head

WINDOW = 50
CONFIG = {"indicators": {"rsi": [14], "ema": [20], "sma": [], "macd": [], "bollinger": [], "atr": [14]},
          "volume": {"enabled": False}, "returns": {"horizons": [1], "volatility": [], "zscore_close": [],
                                                    "zscore_volume": []},
          "patterns": {"candles": ["doji"], "pivots": [], "breakout": [], "hhll": []},
          "time": {"enabled": False}, "cross_asset": {"enabled": False}}


def pipeline(method: str, **extra: object) -> FeaturePipeline:
    return FeaturePipeline(FeatureConfig.from_dict(
        {**CONFIG, "normalisation": {"method": method, "window": WINDOW, "clip": 10.0, **extra}}))


def rolling_z(x: np.ndarray, window: int) -> np.ndarray:
    out = np.full(x.shape, np.nan)
    for t in range(window - 1, len(x)):
        chunk = x[t - window + 1:t + 1]
        if not np.isnan(chunk).any():
            out[t] = (x[t] - chunk.mean()) / chunk.std()
    return out


@pytest.fixture(scope="module")
def btc(btc_eth: Dataset) -> Dataset:
    return head(Dataset({btc_eth.key("BTC/USDT"): btc_eth["BTC/USDT"]}), 600)


def test_rolling_zscores_and_fixed_maps(btc: Dataset) -> None:
    key = btc.keys[0]
    raw = pipeline("rolling").transform(btc, normalise=False)[key]
    out = pipeline("rolling").transform(btc)[key]
    close = raw["close"].to_numpy()
    np.testing.assert_allclose(out["logret_1"].to_numpy(), rolling_z(raw["logret_1"].to_numpy(), WINDOW),
                               rtol=1e-8, atol=1e-8)
    ema_relative = raw["ema_20"].to_numpy() / close - 1  # a price level, made unit-free first
    np.testing.assert_allclose(out["ema_20"].to_numpy(), rolling_z(ema_relative, WINDOW), rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(out["atr_14"].to_numpy(), rolling_z(raw["atr_14"].to_numpy() / close, WINDOW),
                               rtol=1e-8, atol=1e-8)
    # bounded: RSI 0..100 -> [-1, 1] with no statistics and no extra warm-up; flags unchanged
    np.testing.assert_allclose(out["rsi_14"].to_numpy(), (raw["rsi_14"].to_numpy() - 50) / 50)
    assert out["cdl_doji"].equals(raw["cdl_doji"])
    assert out["warm"].arg_true()[0] == 19 + WINDOW - 1  # EMA(20) warm-up, then a full window of it


def jump_series() -> Dataset:
    from datetime import UTC, datetime, timedelta

    from features.data.schema import BarKey

    close = [100.0] * 61 + [150.0] * 5  # flat, then one jump of log(1.5) at bar 61
    frame = pl.DataFrame({"timestamp": [datetime(2024, 1, 1, tzinfo=UTC) + timedelta(hours=i) for i in range(66)],
                          "open": close, "high": close, "low": close, "close": close, "volume": 1.0},
                         schema_overrides={"timestamp": pl.Datetime("us", "UTC")})
    return Dataset({BarKey("test", "X/USDT", "1h"): frame})


def test_flat_windows_score_zero_and_outliers_are_clipped() -> None:
    data = jump_series()
    out = pipeline("rolling").transform(data)[data.keys[0]]["logret_1"]
    assert out[WINDOW:61].to_list() == [0.0] * (61 - WINDOW)  # all-zero returns: a flat window scores 0
    # 49 zeros and one jump r: mean r/50, std 7r/50, so z = (r - r/50) / (7r/50) = 7
    assert out[61] == pytest.approx(7.0, rel=1e-9)
    clipped = pipeline("rolling", clip=5.0).transform(data)[data.keys[0]]["logret_1"]
    assert clipped[61] == 5.0


def test_fitted_scaler_uses_the_training_split_only(btc: Dataset, tmp_path: Path) -> None:
    key = btc.keys[0]
    train = head(btc, 400)
    fitted = pipeline("fitted").fit(train)
    raw = pipeline("none", relative_prices=False).transform(train, normalise=False)[key].filter(pl.col("warm"))
    mean, std = fitted.scaler.stats[str(key)]["logret_1"]  # type: ignore[union-attr]
    assert mean == pytest.approx(raw["logret_1"].mean(), rel=1e-12)
    assert std == pytest.approx(raw["logret_1"].std(ddof=0), rel=1e-12)
    assert set(fitted.scaler.stats[str(key)]) == {"ema_20", "atr_14", "logret_1"}  # type: ignore[union-attr]

    # the statistics do not depend on what comes after the split
    scrambled = Dataset({key: pl.concat([btc[key].head(400), btc[key].tail(200).with_columns(
        pl.col("close") * 3, pl.col("high") * 3, pl.col("open") * 3, pl.col("low") * 3)])})
    assert pipeline("fitted").fit(head(scrambled, 400)).scaler == fitted.scaler

    out = fitted.transform(btc)[key]
    np.testing.assert_allclose(out["logret_1"].to_numpy()[400:],
                               np.clip((pipeline("rolling").transform(btc, normalise=False)[key]["logret_1"]
                                        .to_numpy()[400:] - mean) / std, -10, 10))
    reloaded = FeaturePipeline.load(fitted.save(tmp_path / "pipeline.json"))
    assert reloaded.transform(btc)[key].equals(out)


def test_fitted_without_fit_is_an_error(btc: Dataset) -> None:
    with pytest.raises(DataError, match="needs a fitted scaler"):
        pipeline("fitted").transform(btc)
