"""Feature selection: fitted on the training split only, deterministic, saved and reloaded identically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from features.data.schema import BarKey, DataError, Dataset
from features.panel import FeaturePanel
from features.pipeline.config import FeatureConfig
from features.pipeline.pipeline import FeaturePipeline
from features.pipeline.selection import (
    FeatureSelection,
    FeatureSelector,
    SelectionConfig,
    next_return_target,
    train_split,
)
from tests.features.pipeline.conftest import head

NAMES = ("signal", "noise_a", "twin", "noise_b", "flat", "noise_c", "noise_d")
SPLIT = 1500


def synthetic_panel(seed: int = 0, rows: int = 2000) -> FeaturePanel:
    """Two instruments; ``signal`` predicts the next bar's direction, ``twin`` is a scaled copy of it."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (rows, 2)), axis=0))
    up = np.zeros((rows, 2))
    up[:-1] = np.sign(np.log(close[1:] / close[:-1]))
    signal = up + rng.normal(0, 0.8, (rows, 2))
    columns = {"signal": signal, "twin": 2 * signal + rng.normal(0, 1e-3, (rows, 2)), "flat": np.zeros((rows, 2))}
    features = np.stack([columns.get(n, rng.normal(size=(rows, 2))) for n in NAMES], axis=2).astype(np.float32)
    ohlcv = np.stack([close, close, close, close, np.ones((rows, 2))], axis=2)
    timestamps = np.datetime64("2024-01-01T00:00", "us") + np.arange(rows) * np.timedelta64(1, "h")
    keys = (BarKey("test", "A/USDT", "1h"), BarKey("test", "B/USDT", "1h"))
    return FeaturePanel(timestamps, keys, NAMES, features, ohlcv)


def test_target_is_the_sign_of_the_next_return() -> None:
    panel = synthetic_panel(rows=5)
    close = panel.close.copy()
    close[:, 0] = [1.0, 2.0, 1.0, 1.0, 3.0]
    panel.ohlcv[:, :, 3] = close
    assert next_return_target(panel, 1)[:, 0].tolist() == [1.0, 0.0, 0.0, 1.0]
    assert next_return_target(panel, 2)[:, 0].tolist() == [0.0, 0.0, 1.0]


def test_correlation_filter_drops_twins_and_constants() -> None:
    train = train_split(synthetic_panel(), np.datetime64("2024-01-01T00:00") + np.timedelta64(SPLIT, "h"))
    selection = FeatureSelector(SelectionConfig(method="correlation", correlation_threshold=0.95)).fit(train)
    assert selection.selected == ["signal", "noise_a", "noise_b", "noise_c", "noise_d"]
    assert selection.dropped_correlated == {"twin": "signal", "flat": ""}
    assert selection.rows == (SPLIT - 1) * 2  # the target's last row would need the first validation close


@pytest.mark.parametrize("method", ["rfe", "tree"])
def test_supervised_methods_find_the_informative_feature(method: str) -> None:
    train = train_split(synthetic_panel(), "2024-03-03T12:00")
    config = SelectionConfig(method=method, n_features=2, tree_estimators=30, tree_max_depth=4)
    selection = FeatureSelector(config).fit(train)
    assert len(selection.selected) == 2 and "signal" in selection.selected
    assert "twin" not in selection.selected and "flat" not in selection.selected
    assert max(selection.scores, key=lambda n: selection.scores[n]) == "signal"


@pytest.mark.parametrize("method", ["correlation", "rfe", "tree"])
def test_validation_rows_cannot_influence_the_selection(method: str, tmp_path: Path) -> None:
    panel = synthetic_panel()
    other = synthetic_panel()
    rng = np.random.default_rng(9)
    other.features[SPLIT:] = rng.normal(size=other.features[SPLIT:].shape)  # garbage after the split
    other.ohlcv[SPLIT:, :, 3] *= rng.uniform(0.5, 2.0, other.ohlcv[SPLIT:, :, 3].shape)
    end = panel.timestamps[SPLIT]
    config = SelectionConfig(method=method, n_features=3, tree_estimators=20, tree_max_depth=3)
    first = FeatureSelector(config).fit(train_split(panel, end))
    second = FeatureSelector(config).fit(train_split(other, end))
    assert first == second
    assert first.train_end == str(panel.timestamps[SPLIT - 1])

    reloaded = FeatureSelection.load(first.save(tmp_path / "selection.json"))
    assert reloaded == first
    applied = reloaded.apply(panel)
    assert applied.feature_names == tuple(first.selected)
    np.testing.assert_array_equal(applied.features, panel.features[:, :, [NAMES.index(n) for n in first.selected]])


def test_selection_on_real_features(btc_eth: Dataset, tmp_path: Path) -> None:
    data = head(btc_eth, 2500)
    pipeline = FeaturePipeline(FeatureConfig.load("minimal"))
    panel = pipeline.panel(data)
    train = train_split(panel, panel.timestamps[1500])
    selection = FeatureSelector(SelectionConfig.load("tree")).fit(train)
    names = list(panel.feature_names)
    corr = np.abs(np.corrcoef(train.features[:-1].reshape(-1, len(names)), rowvar=False))
    assert selection.dropped_correlated  # on these real features MACD and its signal line move together
    for dropped, twin in selection.dropped_correlated.items():
        assert corr[names.index(dropped), names.index(twin)] > 0.95
    kept = [names.index(n) for n in selection.selected]
    assert (corr[np.ix_(kept, kept)][~np.eye(len(kept), dtype=bool)] <= 0.95).all()
    assert len(selection.selected) == 16 - len(selection.dropped_correlated)  # fewer than n_features=20 left
    inference = FeatureSelection.load(selection.save(tmp_path / "selected.json")).apply(pipeline.panel(data))
    assert inference.feature_names == tuple(selection.selected)


def test_bad_requests() -> None:
    with pytest.raises(DataError, match="not one of"):
        SelectionConfig(method="lasso")
    with pytest.raises(DataError, match="unknown field"):
        SelectionConfig.from_dict({"methd": "tree"})
    with pytest.raises(DataError, match="lacks selected feature"):
        FeatureSelection("tree", ["nope"], ["nope"]).apply(synthetic_panel(rows=10))
    with pytest.raises(DataError, match="no training rows"):
        train_split(synthetic_panel(rows=10), "2023-01-01")
