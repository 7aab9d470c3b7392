"""Microstructure features appear only when the data has book columns, with hand-checked values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from features.data.schema import BarKey, Dataset
from features.pipeline.config import FeatureConfig
from features.pipeline.pipeline import FeaturePipeline
from tests.features.pipeline.conftest import head

BOOK_COLUMNS = {"spread_rel", "mid_offset", "book_imbalance", "depth_imbalance"}
ONLY_BOOK = FeatureConfig.from_dict({g: {"enabled": False} for g in
                                     ("indicators", "volume", "returns", "patterns", "time", "cross_asset")})


def bars(**book: list[float | None]) -> Dataset:
    n = len(next(iter(book.values())))
    start = datetime(2024, 1, 1, tzinfo=UTC)
    frame = pl.DataFrame({
        "timestamp": [start + timedelta(hours=i) for i in range(n)],
        "open": [100.0] * n, "high": [102.0] * n, "low": [99.0] * n, "close": [101.0] * n, "volume": [5.0] * n,
        **book,
    }, schema_overrides={"timestamp": pl.Datetime("us", "UTC")})
    return Dataset({BarKey("test", "BTC/USDT", "1h"): frame})


def test_plain_ohlcv_has_no_microstructure_features(btc_eth: Dataset) -> None:
    frames = FeaturePipeline().transform(head(btc_eth, 800))
    for frame in frames.values():
        assert not BOOK_COLUMNS & set(frame.columns)


def test_top_of_book_spread_and_imbalance() -> None:
    data = bars(bid=[100.0, 100.5, None, 99.0], ask=[101.0, 101.5, None, 101.0],
                bid_size=[3.0, 1.0, 2.0, 0.0], ask_size=[1.0, 3.0, None, 0.0])
    frame = FeaturePipeline(ONLY_BOOK).transform(data, normalise=False)[data.keys[0]]
    assert set(frame.columns) - {"timestamp", "open", "high", "low", "close", "volume", "warm"} == \
        {"spread_rel", "mid_offset", "book_imbalance"}
    # row 2 has no snapshot: the previous one (row 1) holds
    assert frame["spread_rel"].to_list() == pytest.approx([1 / 100.5, 1 / 101.0, 1 / 101.0, 2 / 100.0])
    assert frame["mid_offset"].to_list() == pytest.approx([101 / 100.5 - 1, 0.0, 0.0, 101 / 100.0 - 1])
    # (3 - 1) / 4, (1 - 3) / 4, bid 2 with the held ask 3, and an empty book -> 0
    assert frame["book_imbalance"].to_list() == pytest.approx([0.5, -0.5, -0.2, 0.0])
    assert frame["warm"].all()


def test_depth_levels_are_summed() -> None:
    data = bars(bid_size_1=[1.0, 4.0], bid_size_2=[2.0, 0.0], ask_size_1=[3.0, 1.0], ask_size_2=[0.0, 1.0],
                bid_size_3=[9.0, 9.0])  # a level without its ask side is ignored
    frame = FeaturePipeline(ONLY_BOOK).transform(data, normalise=False)[data.keys[0]]
    assert frame["depth_imbalance"].to_list() == pytest.approx([0.0, (4 - 2) / 6])
    assert "book_imbalance" not in frame.columns and "spread_rel" not in frame.columns


def test_summed_depth_columns() -> None:
    data = bars(bid_depth=[10.0, 30.0], ask_depth=[30.0, 10.0])
    frame = FeaturePipeline(ONLY_BOOK).transform(data, normalise=False)[data.keys[0]]
    assert frame["depth_imbalance"].to_list() == pytest.approx([-0.5, 0.5])
