"""Walk-forward folds over the training span, and the data of one fold.

The last ``data.validation_days`` of the data are never seen by a sweep: folds are laid over the
bars that close before the validation start (:func:`features.data.splits.train_validation_split`),
so the validation span stays untouched for the final check of the chosen configuration.

For each fold the feature pipeline is fitted on the fold's training bars (normalisation statistics,
feature selection) and computed over the bars up to the fold's test end only.  The agent trains on
the training rows; the test panel starts ``window`` bars before the test start (the convention of
:func:`rl.backtest.evaluation_panel`), after the purge gap, so its equity curve covers exactly the
test window.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from envs import EnvConfig
from features.data.schema import TIMESTAMP, DataError, Dataset
from features.data.splits import Fold, slice_fold, train_validation_split, walk_forward_folds
from features.pipeline import FeatureConfig, FeaturePipeline, FeatureSelector, SelectionConfig
from rl.backtest import evaluation_panel
from rl.builders import PreparedData, load_data
from rl.config import TrainConfig
from rl.walkforward import train_rows
from tune.config import FoldsConfig


@dataclass(frozen=True)
class SweepData:
    """The training span of the data and the folds laid over it."""

    dataset: Dataset  # bars closed before the validation start
    validation_start: datetime
    folds: list[Fold]


def data_start(dataset: Dataset) -> datetime:
    """The earliest bar open over all series."""
    frames = [frame for frame in dataset.series.values() if not frame.is_empty()]
    starts = [cast(datetime, frame[TIMESTAMP].min()) for frame in frames]
    if not starts:
        raise DataError(f"dataset {dataset.name}: no bars")
    return min(starts)


def make_folds(start: datetime, end: datetime, config: FoldsConfig) -> list[Fold]:
    """Walk-forward folds in ``[start, end)``, the most recent ``max_folds`` kept and numbered from 0."""
    folds = walk_forward_folds(
        start, end, train_window=timedelta(days=config.train_days),
        test_window=timedelta(days=config.test_days), step=timedelta(days=config.step_days),
        purge=timedelta(days=config.purge_days), anchored=config.anchored,
    )
    if config.max_folds is not None:
        folds = folds[-config.max_folds:]
    return [dataclasses.replace(fold, index=i) for i, fold in enumerate(folds)]


def sweep_data(config: TrainConfig, folds: FoldsConfig) -> SweepData:
    """Load the data, cut off the validation span and lay the folds over what is left."""
    split = train_validation_split(load_data(config.data), config.data.validation_days)
    return SweepData(split.train, split.cut, make_folds(data_start(split.train), split.cut, folds))


def fold_data(data: SweepData, fold: Fold, config: TrainConfig) -> PreparedData:
    """Features fitted on the fold's training bars; ``train`` = its training rows, ``validation`` = its test
    panel (``window`` rows of context, then the test window)."""
    train_bars, _ = slice_fold(data.dataset, fold)
    pipeline = FeaturePipeline(FeatureConfig.from_dict(config.features)).fit(train_bars)
    panel = pipeline.panel(data.dataset.slice_time(None, fold.test_end))
    train = train_rows(panel, fold)
    selection_config = SelectionConfig.from_dict(config.feature_selection)
    selection = None
    if selection_config.method != "none":
        selection = FeatureSelector(selection_config).fit(train)
        panel, train = selection.apply(panel), selection.apply(train)
    window = int(config.env.get("window", EnvConfig().window))
    return PreparedData(
        dataset=data.dataset, pipeline=pipeline, selection=selection, panel=panel, train=train,
        validation=evaluation_panel(panel, fold.test_start, fold.test_end, window),
        validation_start=fold.test_start, timeframe=panel.keys[0].timeframe,
    )
