"""Tests for features.data.splits: validation span, walk-forward folds, slicing, properties."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.data.schema import OHLCV_COLUMNS, TIMESTAMP, TIMESTAMP_DTYPE, BarKey, DataError, Dataset
from features.data.splits import (
    DEFAULT_STEP,
    DEFAULT_TEST_WINDOW,
    DEFAULT_TRAIN_WINDOW,
    Fold,
    infer_bar_length,
    slice_fold,
    train_validation_split,
    walk_forward_folds,
)

T0 = datetime(2020, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def hourly(n_bars: int, start: datetime = T0, bar: timedelta = HOUR, drop: set[int] | None = None) -> pl.DataFrame:
    kept = [i for i in range(n_bars) if i not in (drop or set())]
    return pl.DataFrame(
        {TIMESTAMP: [start + i * bar for i in kept], **{c: [float(i) for i in kept] for c in OHLCV_COLUMNS}},
        schema_overrides={TIMESTAMP: TIMESTAMP_DTYPE},
    )


# --- train / validation ---------------------------------------------------------------------------


def test_validation_is_exactly_the_last_days() -> None:
    frame = hourly(24 * 30)  # 30 days of hourly bars
    split = train_validation_split(frame, validation_days=7)
    assert split.end == T0 + 30 * DAY
    assert split.cut == T0 + 23 * DAY
    assert split.validation.height == 7 * 24
    assert split.train.height == 23 * 24
    assert split.validation[TIMESTAMP][0] == split.cut
    assert split.validation[TIMESTAMP][-1] == split.end - HOUR
    assert (split.validation[TIMESTAMP].diff().drop_nulls() == HOUR).all()  # contiguous
    assert split.train[TIMESTAMP][-1] + HOUR == split.cut


def test_fractional_days_and_explicit_end() -> None:
    frame = hourly(24 * 10)
    split = train_validation_split(frame, validation_days=0.5, end=T0 + 8 * DAY)
    assert split.cut == T0 + 7.5 * DAY
    assert split.validation[TIMESTAMP].to_list() == [T0 + 7.5 * DAY + i * HOUR for i in range(12)]
    assert split.train.height == 7 * 24 + 12
    # bars at or after the explicit end are in neither part
    assert split.validation[TIMESTAMP].max() < T0 + 8 * DAY  # type: ignore[operator]


def test_cut_off_the_bar_grid_leaves_the_straddling_bar_out_of_training() -> None:
    frame = hourly(48)
    split = train_validation_split(frame, validation_days=0.51, end=T0 + 2 * DAY)  # cut at 11:45:36 of day 1
    assert split.cut == T0 + 2 * DAY - timedelta(days=0.51)
    assert split.train[TIMESTAMP][-1] == T0 + DAY + 10 * HOUR  # 10:00-11:00 closes before the cut, 11:00 straddles
    assert split.validation[TIMESTAMP][0] == T0 + 36 * HOUR  # first bar opening after the cut


def test_gaps_inside_validation_do_not_move_the_cut() -> None:
    frame = hourly(24 * 10, drop={24 * 9 + 5, 24 * 9 + 6})
    split = train_validation_split(frame, validation_days=1)
    assert split.cut == T0 + 9 * DAY
    assert split.validation.height == 22
    assert frame.height == split.train.height + split.validation.height


def test_dataset_uses_one_common_cut() -> None:
    btc = hourly(24 * 20)
    eth_daily = hourly(18, start=T0 + DAY, bar=DAY)  # last bar closes at T0 + 19d, a day before btc's
    dataset = Dataset(
        {BarKey("binance", "BTC/USDT", "1h"): btc, BarKey("binance", "ETH/USDT", "1d"): eth_daily}, "demo"
    )
    split = train_validation_split(dataset, validation_days=3)
    assert split.end == T0 + 20 * DAY  # latest close over both series
    assert split.cut == T0 + 17 * DAY
    assert split.validation["BTC/USDT"].height == 72
    assert split.validation["ETH/USDT"][TIMESTAMP].to_list() == [T0 + 17 * DAY, T0 + 18 * DAY]
    assert split.train["ETH/USDT"][TIMESTAMP][-1] == T0 + 16 * DAY
    assert split.train.keys == dataset.keys


def test_empty_parts_and_bad_requests_raise() -> None:
    frame = hourly(48)
    with pytest.raises(DataError, match="training part"):
        train_validation_split(frame, validation_days=3)
    with pytest.raises(DataError, match="validation part"):
        train_validation_split(frame, validation_days=1, end=T0 + 5 * DAY)
    with pytest.raises(DataError, match="validation_days"):
        train_validation_split(frame, validation_days=0)
    with pytest.raises(DataError, match="timezone"):
        train_validation_split(frame, validation_days=1, end=datetime(2020, 1, 2))
    with pytest.raises(DataError, match="without any bars"):
        train_validation_split(frame.head(0), validation_days=1)
    late = Dataset({BarKey("x", "OLD", "1h"): hourly(48), BarKey("x", "NEW", "1h"): hourly(5, start=T0 + DAY * 1.5)})
    with pytest.raises(DataError, match=r"training part.*x:NEW@1h"):
        train_validation_split(late, validation_days=0.75)


def test_bar_length_inference_and_override() -> None:
    assert infer_bar_length(hourly(10, drop={3, 4})) == HOUR
    assert infer_bar_length(hourly(3, bar=4 * HOUR)) == 4 * HOUR
    with pytest.raises(DataError, match="timeframe"):
        infer_bar_length(hourly(1))
    split = train_validation_split(hourly(2), validation_days=1 / 24, timeframe="1h")
    assert (split.train.height, split.validation.height) == (1, 1)


# --- walk-forward folds ---------------------------------------------------------------------------


def test_rolling_folds_hand_computed() -> None:
    folds = walk_forward_folds(
        T0, T0 + 10 * DAY, train_window=3 * DAY, test_window=2 * DAY, step=DAY, purge=timedelta(hours=6)
    )
    assert len(folds) == 5  # test starts at 3.25, 4.25, ..., 7.25 days; 8.25 + 2 > 10
    first, last = folds[0], folds[-1]
    assert first == Fold(0, T0, T0 + 3 * DAY, T0 + 3.25 * DAY, T0 + 5.25 * DAY)
    assert last == Fold(4, T0 + 4 * DAY, T0 + 7 * DAY, T0 + 7.25 * DAY, T0 + 9.25 * DAY)
    assert all(fold.purge == timedelta(hours=6) for fold in folds)


def test_anchored_folds_expand_from_start() -> None:
    folds = walk_forward_folds(T0, T0 + 10 * DAY, 3 * DAY, 2 * DAY, 2 * DAY, anchored=True)
    assert [f.train_start for f in folds] == [T0] * 3
    assert [f.train_end for f in folds] == [T0 + 3 * DAY, T0 + 5 * DAY, T0 + 7 * DAY]
    assert [f.test_end for f in folds] == [T0 + 5 * DAY, T0 + 7 * DAY, T0 + 9 * DAY]


def test_default_windows_over_five_years() -> None:
    assert (DEFAULT_TRAIN_WINDOW, DEFAULT_TEST_WINDOW, DEFAULT_STEP) == (365 * DAY, 91 * DAY, 30 * DAY)
    start, end = datetime(2018, 1, 1, tzinfo=UTC), datetime(2023, 1, 1, tzinfo=UTC)
    folds = walk_forward_folds(start, end)
    # test windows start at start + 365d + k*30d and must end by `end` (1826 days later)
    assert len(folds) == (1826 - 365 - 91) // 30 + 1
    assert folds[0].test_start == start + 365 * DAY


def test_fold_errors() -> None:
    with pytest.raises(DataError, match="no fold fits"):
        walk_forward_folds(T0, T0 + 4 * DAY, 3 * DAY, 2 * DAY, DAY)
    with pytest.raises(DataError, match="step"):
        walk_forward_folds(T0, T0 + 40 * DAY, 3 * DAY, 2 * DAY, timedelta(0))
    with pytest.raises(DataError, match="purge"):
        walk_forward_folds(T0, T0 + 40 * DAY, 3 * DAY, 2 * DAY, DAY, purge=-HOUR)
    with pytest.raises(DataError, match="timezone"):
        walk_forward_folds(datetime(2020, 1, 1), T0 + 40 * DAY, 3 * DAY, 2 * DAY, DAY)
    with pytest.raises(DataError, match="out of order"):
        Fold(0, T0, T0 + DAY, T0 + HOUR, T0 + 2 * DAY)


def test_slice_fold_frame_and_dataset() -> None:
    frame = hourly(24 * 10)
    fold = walk_forward_folds(T0, T0 + 10 * DAY, 3 * DAY, 2 * DAY, DAY, purge=2 * HOUR)[1]
    train, test = slice_fold(frame, fold)
    assert train[TIMESTAMP].to_list() == [T0 + DAY + i * HOUR for i in range(72)]
    assert test[TIMESTAMP].to_list() == [T0 + 4 * DAY + 2 * HOUR + i * HOUR for i in range(48)]
    dataset = Dataset({BarKey("x", "A", "1h"): frame, BarKey("x", "B", "1d"): hourly(10, bar=DAY)})
    train_ds, test_ds = slice_fold(dataset, fold)
    assert train_ds["A"].equals(train)
    assert train_ds["B"][TIMESTAMP].to_list() == [T0 + DAY, T0 + 2 * DAY, T0 + 3 * DAY]
    assert test_ds["B"][TIMESTAMP].to_list() == [T0 + 5 * DAY, T0 + 6 * DAY]  # open in [4d 2h, 6d 2h)


def test_other_timezones_are_the_same_instants() -> None:
    plus_two = timezone(timedelta(hours=2))
    folds = walk_forward_folds(T0.astimezone(plus_two), (T0 + 10 * DAY).astimezone(plus_two), 3 * DAY, DAY, DAY)
    train, test = slice_fold(hourly(240), folds[0])
    assert (train.height, test.height, test[TIMESTAMP][0]) == (72, 24, T0 + 3 * DAY)


# --- properties -----------------------------------------------------------------------------------

hours = st.integers(1, 24 * 60).map(lambda n: n * HOUR)


@settings(max_examples=150, deadline=None)
@given(
    start_hour=st.integers(0, 24 * 365 * 5),
    span=st.integers(1, 24 * 400).map(lambda n: n * HOUR),
    train_window=hours,
    test_window=hours,
    step=hours,
    purge=st.integers(0, 24 * 7).map(lambda n: n * HOUR),
    anchored=st.booleans(),
)
def test_fold_invariants(
    start_hour: int,
    span: timedelta,
    train_window: timedelta,
    test_window: timedelta,
    step: timedelta,
    purge: timedelta,
    anchored: bool,
) -> None:
    start = T0 + start_hour * HOUR
    end = start + span
    if train_window + purge + test_window > span:
        with pytest.raises(DataError, match="no fold fits"):
            walk_forward_folds(start, end, train_window, test_window, step, purge, anchored)
        return
    folds = walk_forward_folds(start, end, train_window, test_window, step, purge, anchored)
    assert [f.index for f in folds] == list(range(len(folds)))
    assert folds[0].test_start == start + train_window + purge
    assert folds[-1].test_end <= end < folds[-1].test_end + step  # last fold fits; one more would not
    for fold in folds:
        assert fold.test_start - fold.train_end == purge
        assert fold.train_end <= fold.test_start  # no overlap
        assert fold.test_end - fold.test_start == test_window
        assert start <= fold.train_start
        expected_train = fold.train_end - start if anchored else train_window
        assert fold.train_end - fold.train_start == expected_train
    for before, after in itertools.pairwise(folds):
        assert after.test_start - before.test_start == step
        assert after.train_end - before.train_end == step


@settings(max_examples=100, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_bars=st.integers(10, 400),
    validation_fraction=st.floats(0.1, 0.9),
    bar_hours=st.sampled_from([1, 4, 24]),
)
def test_validation_split_properties(seed: int, n_bars: int, validation_fraction: float, bar_hours: int) -> None:
    bar = bar_hours * HOUR
    rng = np.random.default_rng(seed)
    frame = hourly(n_bars, bar=bar, drop={int(i) for i in rng.integers(1, n_bars - 1, n_bars // 10)})
    days = validation_fraction * n_bars * bar_hours / 24  # a share of the span, usually off the bar grid
    split = train_validation_split(frame, validation_days=days)  # both parts hold at least one bar
    assert split.end == frame[TIMESTAMP].max() + bar  # type: ignore[operator]
    assert split.end - split.cut == timedelta(days=days)
    # validation is every bar opening in [cut, end): one continuous span with nothing skipped
    assert split.validation.equals(frame.filter(pl.col(TIMESTAMP) >= split.cut))
    assert (split.train[TIMESTAMP] + bar <= split.cut).all()
    straddling = frame.filter((pl.col(TIMESTAMP) < split.cut) & (pl.col(TIMESTAMP) + bar > split.cut))
    assert split.train.height + split.validation.height + straddling.height == frame.height
