"""No look-ahead, proven: every feature computed on the first k bars equals the same rows of the full series.

The data are real bundled bars (BTC and ETH, hourly, three different windows of the 2017-2022
history), ETH with order-book columns, plus a news-like external source whose rows are published
between bar boundaries.  On it every feature class of the pipeline is active, which the coverage
test checks, so a new feature class is covered by the property the day it is added.
"""

from __future__ import annotations

import inspect
from functools import cache

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

import features.pipeline.catalog  # noqa: F401  (imports every feature module)
from features.data.schema import BarKey, Dataset
from features.pipeline.base import BuildContext, Feature
from features.pipeline.config import FeatureConfig
from features.pipeline.external import FrameSource
from features.pipeline.pipeline import FeaturePipeline, with_bar_index
from tests.features.pipeline.conftest import head, news_source, with_book

ROWS = 2500
STARTS = (0, 20_000, 38_000)  # three market regimes of the real data


def concrete_features() -> set[type[Feature]]:
    found: set[type[Feature]] = set()
    pending = list(Feature.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if not inspect.isabstract(cls):
            found.add(cls)
    return found


def pipeline_for(source: FrameSource) -> FeaturePipeline:
    return FeaturePipeline(FeatureConfig(), sources=[source])


@cache
def _window(start: int) -> tuple[Dataset, FrameSource]:
    from features.data.registry import load_dataset

    data = head(load_dataset("binance_1h", symbols=["BTC/USDT", "ETH/USDT"]).dataset, ROWS, start)
    eth = data.key("ETH/USDT")
    data.series[eth] = with_book(data[eth], seed=start + 1)
    return data, news_source(data, seed=start + 2)


@cache
def _full(start: int, normalise: bool) -> dict[BarKey, pl.DataFrame]:
    data, source = _window(start)
    return pipeline_for(source).transform(data, normalise=normalise)


def test_every_feature_class_is_active_on_the_property_data() -> None:
    data, source = _window(0)
    pipeline = pipeline_for(source)
    peers = {k: with_bar_index(data[k]) for k in data.keys}
    active = {type(f) for k in data.keys for f in pipeline.features
              if f.applies(BuildContext(k, frozenset(data[k].columns), peers=peers))}
    assert concrete_features() <= active, f"not exercised: {concrete_features() - active}"
    columns = {c for frame in _full(0, True).values() for c in frame.columns}
    expected = {o.name for f in pipeline.features for o in f.outputs()}
    assert expected <= columns


@settings(max_examples=50, deadline=None, derandomize=True)
@given(start=st.sampled_from(STARTS), k=st.integers(min_value=1, max_value=ROWS), normalise=st.booleans())
def test_prefix_rows_equal_full_rows(start: int, k: int, normalise: bool) -> None:
    data, source = _window(start)
    prefix = pipeline_for(source).transform(head(data, k), normalise=normalise)
    full = _full(start, normalise)
    assert set(prefix) == set(full)
    for key, frame in prefix.items():
        assert frame.height == k
        assert_frame_equal(frame, full[key].head(k), check_exact=True)


def test_the_future_can_change_without_changing_the_past(btc_eth: Dataset) -> None:
    """Replace everything after bar 1500 by garbage: rows up to 1500 must not move."""
    data = head(btc_eth, 2000)
    cut = 1500
    scrambled = Dataset({k: pl.concat([f.head(cut), f.tail(f.height - cut).reverse().with_columns(
        pl.Series("timestamp", f["timestamp"].tail(f.height - cut)))]) for k, f in data.series.items()})
    pipeline = FeaturePipeline()
    original, changed = pipeline.transform(data), pipeline.transform(scrambled)
    for key in data.keys:
        assert_frame_equal(original[key].head(cut), changed[key].head(cut), check_exact=True)
        assert not original[key].tail(100).equals(changed[key].tail(100))
