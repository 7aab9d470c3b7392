"""Warm-up rows follow one explicit rule: a value exists exactly from the feature's declared warm-up on."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from features.data.schema import Dataset
from features.pipeline.base import FrameFeature
from features.pipeline.config import FeatureConfig
from features.pipeline.pipeline import WARM, FeaturePipeline
from tests.features.pipeline.conftest import head


@pytest.fixture(scope="module")
def btc(btc_eth: Dataset) -> Dataset:
    return head(Dataset({btc_eth.key("BTC/USDT"): btc_eth["BTC/USDT"]}), 1500)


def first_valid(series: pl.Series) -> int:
    return int(series.is_not_null().arg_max() or 0) if series.is_not_null().any() else -1


def test_each_feature_is_null_exactly_before_its_warmup(btc: Dataset) -> None:
    pipeline = FeaturePipeline()
    frame = pipeline.transform(btc, normalise=False)[btc.keys[0]]
    checked = 0
    for feature in pipeline.features:
        if isinstance(feature, FrameFeature) or feature.group == "microstructure":
            continue
        for name in feature.names:
            column = frame[name]
            assert first_valid(column) == feature.warmup, name
            assert column.slice(feature.warmup).null_count() == 0, name
            checked += 1
    assert checked == 56  # every default column but the 5 cross-asset ones


def test_warm_means_every_column_has_a_value(btc: Dataset) -> None:
    pipeline = FeaturePipeline()
    for normalise in (False, True):
        frame = pipeline.transform(btc, normalise=normalise)[btc.keys[0]]
        names = [c for c in frame.columns if c not in ("timestamp", "open", "high", "low", "close", "volume", WARM)]
        expected = frame.select(pl.all_horizontal(pl.col(names).is_not_null()))[:, 0]
        assert frame[WARM].to_list() == expected.to_list()
        first = first_valid(frame[WARM].replace(False, None))
        # raw: the longest window (168 bars); normalised: plus the 500-bar rolling statistics of that column
        assert first == (168 if not normalise else 168 + 499)
        assert frame[WARM].slice(first).all()


def test_panel_drops_warmup_rows_or_zero_fills_them(btc_eth: Dataset) -> None:
    data = head(btc_eth, 1200)
    pipeline = FeaturePipeline(FeatureConfig.load("minimal"))
    frames = pipeline.transform(data)
    panel = pipeline.panel(data)
    warm_start = max(first_valid(f[WARM].replace(False, None)) for f in frames.values())
    assert panel.n_bars == 1200 - warm_start
    assert panel.timestamps[0] == np.datetime64(frames[data.keys[0]]["timestamp"][warm_start].replace(tzinfo=None))
    assert panel.features.dtype == np.float32 and np.isfinite(panel.features).all()
    assert panel.feature_names == tuple(n for n in frames[data.keys[0]].columns
                                        if n not in ("timestamp", "open", "high", "low", "close", "volume", WARM))
    np.testing.assert_array_equal(panel.close[:, 0], frames[data.keys[0]]["close"].to_numpy()[warm_start:])

    kept = pipeline.panel(data, drop_warmup=False)
    assert kept.n_bars == 1200
    assert (kept.features[:warm_start][np.isnan(frames[data.keys[0]].select(panel.feature_names).to_numpy()
                                                [:warm_start])[:, None, :].repeat(2, axis=1)] == 0).all()
    np.testing.assert_array_equal(kept.features[warm_start:], panel.features)


def test_panel_keeps_only_timestamps_every_instrument_has(btc_eth: Dataset) -> None:
    data = head(btc_eth, 1200)
    eth = data.key("ETH/USDT")
    data.series[eth] = data[eth].filter(pl.int_range(pl.len()) % 97 != 50)  # ETH misses 12 bars
    pipeline = FeaturePipeline(FeatureConfig.load("minimal"))
    panel = pipeline.panel(data, drop_warmup=False)
    assert panel.n_bars == 1200 - 12
    btc_times = set(data["BTC/USDT"]["timestamp"].dt.replace_time_zone(None).to_numpy().tolist())
    eth_times = set(data[eth]["timestamp"].dt.replace_time_zone(None).to_numpy().tolist())
    assert set(panel.timestamps.tolist()) == btc_times & eth_times
