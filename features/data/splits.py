"""Time splits for honest evaluation: a final validation span and walk-forward folds.

Every interval is half-open, ``[start, end)``, in UTC.  A bar belongs to a
**training** part when it has *closed* by the part's end (open + bar length
<= end), so no training bar overlaps the period after it; a bar belongs to an
**evaluation** part (validation, fold test) when it *opens* inside it.  When
the cut points lie on the bar grid, as with the defaults, this is plain
slicing by bar open time; otherwise a bar straddling a cut is left out of
training rather than leak.

For a :class:`Dataset` each series uses the bar length of its key; for a
bare frame the bar length is ``timeframe`` or, if not given, the smallest
spacing between its timestamps (``timeframe`` is ignored for a Dataset).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, TypeVar, cast

import polars as pl

from features.data.schema import TIMESTAMP, BarKey, DataError, Dataset, parse_timeframe

Bars = TypeVar("Bars", pl.DataFrame, Dataset)

DEFAULT_TRAIN_WINDOW = timedelta(days=365)
DEFAULT_TEST_WINDOW = timedelta(days=91)
DEFAULT_STEP = timedelta(days=30)
DEFAULT_VALIDATION_DAYS = 365.0


def _require_utc_aware(**moments: datetime) -> None:
    for name, moment in moments.items():
        if moment.tzinfo is None:
            raise DataError(f"{name} {moment} must be timezone-aware (UTC)")


def infer_bar_length(frame: pl.DataFrame) -> timedelta:
    """The smallest positive spacing between timestamps: the bar length of a frame with gaps."""
    steps = frame[TIMESTAMP].sort().diff().drop_nulls()
    positive = steps.filter(steps > timedelta(0))
    if positive.is_empty():
        raise DataError(f"cannot infer the bar length of a frame with {frame.height} distinct bar(s); pass timeframe")
    return positive.min()  # type: ignore[return-value]


FramePart = Callable[[pl.DataFrame, timedelta], pl.DataFrame]


def _members(data: pl.DataFrame | Dataset) -> list[tuple[BarKey | None, pl.DataFrame]]:
    return list(data.series.items()) if isinstance(data, Dataset) else [(None, data)]


def _bar_length(frame: pl.DataFrame, key: BarKey | None, timeframe: str | None) -> timedelta:
    if key is not None:
        return parse_timeframe(key.timeframe)
    return parse_timeframe(timeframe) if timeframe else infer_bar_length(frame)


def _each_series(data: Bars, part: FramePart, timeframe: str | None) -> Bars:
    if isinstance(data, Dataset):
        return Dataset(
            {key: part(frame, _bar_length(frame, key, None)) for key, frame in data.series.items()}, data.name
        )
    return part(data, _bar_length(data, None, timeframe))


def _closed_within(start: datetime | None, end: datetime) -> FramePart:
    def part(frame: pl.DataFrame, bar: timedelta) -> pl.DataFrame:
        mask = pl.col(TIMESTAMP) + bar <= end
        if start is not None:
            mask = mask & (pl.col(TIMESTAMP) >= start)
        return frame.filter(mask)

    return part


def _opening_within(start: datetime, end: datetime) -> FramePart:
    def part(frame: pl.DataFrame, bar: timedelta) -> pl.DataFrame:
        return frame.filter((pl.col(TIMESTAMP) >= start) & (pl.col(TIMESTAMP) < end))

    return part


def _require_rows(data: pl.DataFrame | Dataset, what: str) -> None:
    for key, frame in _members(data):
        if frame.is_empty():
            raise DataError(f"{what} of {key or 'the frame'} would be empty")


def _data_end(data: pl.DataFrame | Dataset, timeframe: str | None) -> datetime:
    """Close time of the last bar over all series."""
    ends = [
        cast(datetime, frame[TIMESTAMP].max()) + _bar_length(frame, key, timeframe)
        for key, frame in _members(data)
        if not frame.is_empty()
    ]
    if not ends:
        raise DataError("cannot split data without any bars")
    return max(ends)


@dataclass(frozen=True)
class TrainValidationSplit(Generic[Bars]):
    """Training bars closed by ``cut``; validation bars opening in ``[cut, end)``."""

    train: Bars
    validation: Bars
    cut: datetime
    end: datetime


def train_validation_split(
    data: Bars,
    validation_days: float = DEFAULT_VALIDATION_DAYS,
    end: datetime | None = None,
    *,
    timeframe: str | None = None,
) -> TrainValidationSplit[Bars]:
    """Hold out the last ``validation_days`` before ``end`` (default: close of the last bar).

    A Dataset is cut at one common time for all series.  Bars opening at or
    after an explicit ``end`` belong to neither part.  DataError if either
    part (of any series) would be empty.
    """
    if not validation_days > 0:
        raise DataError(f"validation_days must be positive, got {validation_days}")
    stop = _data_end(data, timeframe) if end is None else end
    _require_utc_aware(end=stop)
    cut = stop - timedelta(days=validation_days)
    train = _each_series(data, _closed_within(None, cut), timeframe)
    validation = _each_series(data, _opening_within(cut, stop), timeframe)
    _require_rows(train, f"training part before {cut}")
    _require_rows(validation, f"validation part [{cut}, {stop})")
    return TrainValidationSplit(train, validation, cut, stop)


@dataclass(frozen=True)
class Fold:
    """One walk-forward fold: train on ``[train_start, train_end)``, test on ``[test_start, test_end)``."""

    index: int
    train_start: datetime
    train_end: datetime
    test_start: datetime
    test_end: datetime

    def __post_init__(self) -> None:
        if not self.train_start < self.train_end <= self.test_start < self.test_end:
            raise DataError(f"fold {self.index} is out of order: {self}")

    @property
    def purge(self) -> timedelta:
        """Gap between training and test, so labels looking ahead cannot leak."""
        return self.test_start - self.train_end


def _check_windows(train_window: timedelta, test_window: timedelta, step: timedelta, purge: timedelta) -> None:
    for name, window in {"train_window": train_window, "test_window": test_window, "step": step}.items():
        if window <= timedelta(0):
            raise DataError(f"{name} must be positive, got {window}")
    if purge < timedelta(0):
        raise DataError(f"purge must be >= 0, got {purge}")


def walk_forward_folds(
    start: datetime,
    end: datetime,
    train_window: timedelta = DEFAULT_TRAIN_WINDOW,
    test_window: timedelta = DEFAULT_TEST_WINDOW,
    step: timedelta = DEFAULT_STEP,
    purge: timedelta = timedelta(0),
    anchored: bool = False,
) -> list[Fold]:
    """Folds whose test windows start at start + train_window + purge and advance by ``step``.

    Rolling folds train on the ``train_window`` before the purge gap;
    ``anchored`` folds train from ``start`` on (an expanding window).  Folds
    stop before a test window would run past ``end``; DataError if none fits.
    """
    _require_utc_aware(start=start, end=end)
    _check_windows(train_window, test_window, step, purge)
    folds: list[Fold] = []
    test_start = start + train_window + purge
    while test_start + test_window <= end:
        train_end = test_start - purge
        train_start = start if anchored else train_end - train_window
        folds.append(Fold(len(folds), train_start, train_end, test_start, test_start + test_window))
        test_start += step
    if not folds:
        needed = train_window + purge + test_window
        raise DataError(f"no fold fits in [{start}, {end}): one fold needs {needed}, the span is {end - start}")
    return folds


def slice_fold(data: Bars, fold: Fold, *, timeframe: str | None = None) -> tuple[Bars, Bars]:
    """(training bars closed within the fold's train window, test bars opening in its test window)."""
    train = _each_series(data, _closed_within(fold.train_start, fold.train_end), timeframe)
    test = _each_series(data, _opening_within(fold.test_start, fold.test_end), timeframe)
    return train, test
