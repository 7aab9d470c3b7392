"""Walk-forward folds over the training span: the validation span is never touched, the purge gap is kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import cast

import numpy as np

from rl.config import TrainConfig
from rl.train_cli import compose_config
from tune.config import FoldsConfig
from tune.folds import fold_data, make_folds, sweep_data

SHORT = ["data=binance_btc_1h", "data.start=2022-06-01", "data.validation_days=30", "env.window=8"]


def test_the_most_recent_folds_are_kept_and_renumbered() -> None:
    start, end = datetime(2022, 1, 1, tzinfo=UTC), datetime(2022, 3, 1, tzinfo=UTC)
    folds = make_folds(start, end, FoldsConfig(train_days=20, test_days=10, step_days=10, purge_days=1,
                                               max_folds=2))
    # Test windows start at Jan 22, Feb 1, Feb 11 and Feb 21 would end after Mar 1: three fit, two kept.
    assert [f.index for f in folds] == [0, 1]
    assert [f.test_start.date().isoformat() for f in folds] == ["2022-02-01", "2022-02-11"]
    assert all(f.purge == timedelta(days=1) for f in folds)
    assert all(f.train_end - f.train_start == timedelta(days=20) for f in folds)
    anchored = make_folds(start, end, FoldsConfig(train_days=20, test_days=10, step_days=10, purge_days=1,
                                                  anchored=True, max_folds=None))
    assert len(anchored) == 3 and all(f.train_start == start for f in anchored)


def test_folds_stay_before_the_validation_span_and_fold_data_follows_them() -> None:
    config = TrainConfig.from_dict(compose_config(SHORT))
    folds = FoldsConfig(train_days=30, test_days=10, step_days=10, purge_days=1, max_folds=2)
    data = sweep_data(config, folds)
    # The bundled series ends 2022-10-10 23:00; the last 30 days are validation.
    assert data.validation_start == datetime(2022, 9, 11, tzinfo=UTC)
    assert data.folds[-1].test_end <= data.validation_start
    last_bar = max(cast(datetime, frame["timestamp"].max()) for frame in data.dataset.series.values())
    assert last_bar + timedelta(hours=1) <= data.validation_start
    fold = data.folds[-1]
    prepared = fold_data(data, fold, config)
    stamps = prepared.train.timestamps
    assert stamps[0] >= np.datetime64(fold.train_start.replace(tzinfo=None), "us")
    assert stamps[-1] + np.timedelta64(1, "h") <= np.datetime64(fold.train_end.replace(tzinfo=None), "us")
    test = prepared.validation.timestamps
    # window=8 rows of context (inside the purge gap), then the 240 test bars.
    assert len(test) == 8 + 240
    assert test[8] == np.datetime64(fold.test_start.replace(tzinfo=None), "us")
