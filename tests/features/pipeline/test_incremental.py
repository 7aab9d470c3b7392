"""Incremental mode: features fed one closed bar at a time equal the batch computation on real data."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import polars as pl
import pytest

from features.data.schema import BarKey, DataError, Dataset
from features.pipeline.config import FeatureConfig
from features.pipeline.external import FrameSource
from features.pipeline.incremental import IncrementalFeatures
from features.pipeline.pipeline import WARM, FeaturePipeline
from tests.features.pipeline.conftest import head

TOLERANCE = 1e-9  # recursions are bit-identical; rolling sums may differ in the last bits


def assert_row_matches(row: dict[str, Any], batch: pl.DataFrame, names: list[str]) -> None:
    expected = batch.filter(pl.col("timestamp") == row["timestamp"])
    assert expected.height == 1
    want = expected.row(0, named=True)
    assert row[WARM] == want[WARM]
    for name in names:
        if want[name] is None:
            assert row[name] is None, name
        else:
            assert row[name] == pytest.approx(want[name], rel=TOLERANCE, abs=TOLERANCE), name


def feed(engine: IncrementalFeatures, data: Dataset, start: int, stop: int) -> list[dict[BarKey, dict[str, Any]]]:
    return [engine.update({k: data[k].slice(i, 1) for k in data.keys if i < data[k].height})
            for i in range(start, stop)]


def test_every_group_one_bar_at_a_time_equals_batch(kitchen_sink: tuple[Dataset, FrameSource]) -> None:
    """All groups (book columns on ETH, BTC as cross-asset reference, a news source), resumed after 1000 bars."""
    data, source = kitchen_sink
    data = head(data, 1030)
    pipeline = FeaturePipeline(FeatureConfig(), sources=[source])
    batch = pipeline.transform(data)
    engine = IncrementalFeatures(pipeline, head(data, 1000))
    assert engine.capacity == 502 and engine.order[0].symbol == "BTC/USDT"  # the reference goes first
    for rows in feed(engine, data, 1000, 1030):
        assert set(rows) == set(data.keys)
        for key, row in rows.items():
            assert_row_matches(row, batch[key], engine.feature_names(key))
    eth = data.key("ETH/USDT")
    assert {"spread_rel", "book_imbalance", "depth_imbalance", "ext_news_score", "xa_btc_corr_168"} \
        <= set(engine.feature_names(eth))


def test_from_the_first_bar_through_the_bounded_buffer(btc_eth: Dataset) -> None:
    """Start empty: the buffer grows to its capacity, then slides; every row still equals batch."""
    data = head(Dataset({btc_eth.key("ETH/USDT"): btc_eth["ETH/USDT"]}), 120)
    config = FeatureConfig.load("minimal")
    config.normalisation.window = 50
    pipeline = FeaturePipeline(config)
    batch = pipeline.transform(data)[data.keys[0]]
    engine = IncrementalFeatures(pipeline, head(data, 0))
    assert engine.capacity == 52  # 50-bar normalisation window + 2
    warm_rows = 0
    for rows in feed(engine, data, 0, 120):
        row = rows[data.keys[0]]
        assert_row_matches(row, batch, engine.feature_names(data.keys[0]))
        warm_rows += row[WARM]
    assert warm_rows == batch[WARM].sum() == 120 - (33 + 49)  # MACD warm-up, then 50 values to scale it


def test_bad_bars_are_refused(btc_eth: Dataset) -> None:
    data = head(Dataset({btc_eth.key("BTC/USDT"): btc_eth["BTC/USDT"]}), 300)
    engine = IncrementalFeatures(FeaturePipeline(FeatureConfig.load("minimal")), data)
    key = data.keys[0]
    last = data[key].tail(1)
    with pytest.raises(DataError, match="not after the last one"):
        engine.update({key: last})
    later = last.with_columns(pl.col("timestamp") + timedelta(hours=1))
    with pytest.raises(DataError, match="missing volume"):
        engine.update({key: later.drop("volume")})
    with pytest.raises(DataError, match="high < low"):
        engine.update({key: later.with_columns(high=pl.col("low") - 1.0)})
    with pytest.raises(DataError, match="unknown series"):
        engine.update({"DOGE/USDT": later})
    with pytest.raises(DataError, match="below the pipeline's look-back"):
        IncrementalFeatures(FeaturePipeline(FeatureConfig.load("minimal")), data, capacity=50)
    row = engine.update({"BTC/USDT": later.row(0, named=True)})[key]  # a plain mapping works too
    assert np.isfinite([v for k, v in row.items() if k not in ("timestamp", WARM)]).all()
