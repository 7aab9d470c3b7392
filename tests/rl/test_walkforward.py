"""Walk-forward analysis: training hook inputs, stitching of the test segments, aggregation, seed summaries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from features.data.schema import DataError, Dataset
from features.data.splits import Fold, walk_forward_folds
from features.panel import FeaturePanel
from features.pipeline import FeaturePipeline
from rl.baselines import Baseline, make_baseline
from rl.walkforward import seed_summary, stitch, walk_forward
from tests.rl.backtest_data import config, dataset, panel

START = datetime(2020, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def btc() -> FeaturePanel:
    return panel("binance_btc_1h")


def _folds(step_days: int, test_days: int, count_days: int = 200) -> list[Fold]:
    return walk_forward_folds(START, START + timedelta(days=count_days), train_window=timedelta(days=60),
                              test_window=timedelta(days=test_days), step=timedelta(days=step_days))


def _bars_in(data: FeaturePanel, start: datetime, end: datetime) -> int:
    stamps = pd.DatetimeIndex(data.timestamps).tz_localize("UTC")
    return int(((stamps >= start) & (stamps < end)).sum())


def test_the_training_hook_sees_only_its_training_window(btc: FeaturePanel) -> None:
    seen: list[tuple[Fold, FeaturePanel]] = []

    def make_policy(train: FeaturePanel | Dataset, fold: Fold) -> Baseline:
        assert isinstance(train, FeaturePanel)
        seen.append((fold, train))
        return make_baseline("logistic", None, train)

    folds = _folds(step_days=30, test_days=30)
    result = walk_forward(btc, folds, make_policy, config())
    assert len(seen) == len(folds) == len(result.results) == 4
    for fold, train in seen:
        closes = pd.DatetimeIndex(train.timestamps).tz_localize("UTC") + pd.Timedelta(hours=1)
        assert closes[-1] == fold.train_end
        assert train.timestamps[0] == np.datetime64(fold.train_start.replace(tzinfo=None))
    table = result.fold_table()
    assert list(table.index) == [0, 1, 2, 3] and (table["test_start"] == [f.test_start for f in folds]).all()


def test_non_overlapping_folds_stitch_into_the_chained_fold_curves(btc: FeaturePanel) -> None:
    folds = _folds(step_days=30, test_days=30)
    result = walk_forward(btc, folds, lambda train, fold: make_baseline("ma_crossover", {"fast": 12, "slow": 48}),
                          config())
    pieces = [r.equity for r in result.results]
    for fold, piece in zip(folds, pieces, strict=True):  # each fold: its decision close, then its test bars
        assert len(piece) == 1 + _bars_in(btc, fold.test_start, fold.test_end)
    returns = np.concatenate([p.to_numpy()[1:] / p.to_numpy()[:-1] for p in pieces])
    np.testing.assert_allclose(result.equity.to_numpy(), 10_000 * np.cumprod(np.r_[1.0, returns]), rtol=1e-12)
    assert result.equity.index.equals(pieces[0].index[:1].append([p.index[1:] for p in pieces]))
    totals = np.prod([1 + r.metrics["total_return"] for r in result.results]) - 1
    assert result.metrics["total_return"] == pytest.approx(totals, rel=1e-10)
    assert result.metrics["n_trades"] == sum(r.metrics["n_trades"] for r in result.results) > 0
    assert result.metrics["n_folds"] == 4


def test_overlapping_folds_use_each_policy_until_the_next_fold_starts(btc: FeaturePanel) -> None:
    folds = _folds(step_days=20, test_days=45, count_days=170)
    result = walk_forward(btc, folds, lambda train, fold: make_baseline("buy_and_hold"), config())
    curves = [r.equity for r in result.results]
    for fold, later, segment, full in zip(folds, [*folds[1:], None], result.segments, curves, strict=True):
        end = later.test_start if later else fold.test_end
        assert segment.index[-1] == pd.Timestamp(end) - pd.Timedelta(hours=1)
        assert segment.equals(full.iloc[: len(segment)])
        assert len(full) == 1 + _bars_in(btc, fold.test_start, fold.test_end)
    assert len(result.equity) == 1 + sum(len(s) - 1 for s in result.segments)
    with pytest.raises(DataError, match="overlap"):
        stitch([result.segments[0], result.segments[0]], 1.0)


def test_a_dataset_with_a_pipeline_per_fold() -> None:
    data = dataset("binance_btc_1h").slice_time(START - timedelta(days=15), START + timedelta(days=120))
    pipelines: list[FeaturePipeline] = []

    def make_policy(train: FeaturePanel | Dataset, fold: Fold) -> tuple[Baseline, FeaturePipeline]:
        assert isinstance(train, Dataset)
        assert all(f["timestamp"].max() < fold.train_end for f in train.series.values())  # type: ignore[operator]
        pipelines.append(FeaturePipeline.from_config("minimal"))
        return make_baseline("zscore_reversion"), pipelines[-1]

    folds = _folds(step_days=30, test_days=30, count_days=120)
    result = walk_forward(data, folds, make_policy, config())
    assert len(pipelines) == 2 and result.equity.index[1] == pd.Timestamp(folds[0].test_start)
    with pytest.raises(DataError, match="pass the dataset"):
        walk_forward(panel("binance_btc_1h"), folds,
                     lambda train, fold: (make_baseline("buy_and_hold"), FeaturePipeline.from_config("minimal")),
                     config())


def test_seed_summary_gives_median_and_spread() -> None:
    runs = [{"sharpe": 1.0, "total_return": 0.1}, {"sharpe": 2.0, "total_return": float("nan")},
            {"sharpe": 4.0, "total_return": 0.3}, {"sharpe": 3.0}]
    summary = seed_summary(runs)
    assert summary["sharpe"] == {"median": 2.5, "q25": 1.75, "q75": 3.25, "iqr": 1.5, "min": 1.0, "max": 4.0,
                                 "mean": 2.5, "n": 4.0}
    assert summary["total_return"]["median"] == pytest.approx(0.2) and summary["total_return"]["n"] == 2.0
    assert np.isnan(seed_summary([{"x": float("nan")}])["x"]["median"])
    with pytest.raises(DataError):
        seed_summary([])
