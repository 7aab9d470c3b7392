"""Resample bar frames to a longer timeframe (1m -> 5m -> 15m -> 1h -> 4h -> 1d ...).

Target bars are aligned to whole multiples of the target bar length counted
from the Unix epoch in UTC: a 4h bar opens at 00:00, 04:00, 08:00 ... UTC and
a 1d bar at 00:00 UTC.  (A 1w bar is therefore epoch-aligned too, opening on
Thursdays, since 1970-01-01 was a Thursday.)

Aggregation: open = first, high = max, low = min, close = last,
volume = sum.  Every extra column takes the **last** value in the bucket
unless ``aggregate`` names another rule for it; the ``is_filled`` flag
defaults to ``any`` so a bucket containing a filled bar stays flagged.

Every output bar carries an integer ``n_bars`` column: how many source bars
went into it.  If the input already has ``n_bars`` (it was resampled before),
the counts are summed, so ``n_bars`` always counts the original bars and
chained resampling (1m -> 5m -> 15m) equals direct resampling (1m -> 15m).
With ``complete_only=True`` a target bar is kept only when the bucket holds
every source row it should (target / source of them); partial first and last
buckets and buckets with an exchange outage inside are dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Literal

import polars as pl

from features.data.schema import (
    FILLED_FLAG,
    OHLCV_COLUMNS,
    REQUIRED_COLUMNS,
    TIMESTAMP,
    TIMESTAMP_DTYPE,
    BarKey,
    DataError,
    Dataset,
    parse_timeframe,
)

N_BARS = "n_bars"
Aggregation = Literal["first", "last", "min", "max", "sum", "mean", "any"]

DEFAULT_EXTRA_AGGREGATION: Aggregation = "last"
DEFAULT_AGGREGATIONS: Mapping[str, Aggregation] = {FILLED_FLAG: "any"}

_OHLCV_RULES: Mapping[str, Aggregation] = {
    "open": "first",
    "high": "max",
    "low": "min",
    "close": "last",
    "volume": "sum",
}
_BUCKET = "__bucket_us"


_RULES: Mapping[str, Callable[[pl.Expr], pl.Expr]] = {
    "first": pl.Expr.first,
    "last": pl.Expr.last,
    "min": pl.Expr.min,
    "max": pl.Expr.max,
    "sum": pl.Expr.sum,
    "mean": pl.Expr.mean,
    "any": pl.Expr.any,
}


def _aggregate(column: str, rule: Aggregation) -> pl.Expr:
    if rule not in _RULES:
        raise DataError(f"unknown aggregation {rule!r} for column {column!r}: use one of {sorted(_RULES)}")
    return _RULES[rule](pl.col(column)).alias(column)


def bars_per_bucket(source_tf: str, target_tf: str) -> int:
    """How many source bars make one target bar; DataError unless target is a whole multiple."""
    source, target = parse_timeframe(source_tf), parse_timeframe(target_tf)
    if target < source or target % source:
        raise DataError(
            f"cannot resample {source_tf!r} bars to {target_tf!r}: "
            f"the target timeframe must be a whole multiple of the source timeframe"
        )
    return target // source


def _check_frame(frame: pl.DataFrame, source_us: int, source_tf: str) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"bar frame lacks column(s) {missing}; it has {frame.columns}")
    epoch_us = frame[TIMESTAMP].dt.epoch("us")
    off_grid = (epoch_us % source_us != 0).arg_true()
    if len(off_grid):
        row = int(off_grid[0])
        raise DataError(
            f"row {row}: timestamp {frame[TIMESTAMP][row]} is not on the {source_tf!r} grid "
            f"(bar open times must be whole multiples of {source_tf} since the epoch)"
        )
    duplicated = frame[TIMESTAMP].is_duplicated().arg_true()
    if len(duplicated):
        row = int(duplicated[0])
        raise DataError(f"row {row}: duplicate timestamp {frame[TIMESTAMP][row]}")


def _rules(frame: pl.DataFrame, aggregate: Mapping[str, Aggregation] | None) -> dict[str, Aggregation]:
    overrides = dict(aggregate or {})
    unknown = sorted(set(overrides) - set(frame.columns))
    fixed = sorted(set(overrides) & {TIMESTAMP, N_BARS, *OHLCV_COLUMNS})
    if unknown or fixed:
        raise DataError(
            f"aggregate names {unknown + fixed}: only extra columns present in the frame can be given a rule"
        )
    rules: dict[str, Aggregation] = dict(_OHLCV_RULES)
    for column in frame.columns:
        if column not in rules and column not in (TIMESTAMP, N_BARS):
            default = DEFAULT_AGGREGATIONS.get(column, DEFAULT_EXTRA_AGGREGATION)
            rules[column] = overrides.get(column, default)
    return rules


def resample(
    frame: pl.DataFrame,
    source_tf: str,
    target_tf: str,
    *,
    complete_only: bool = True,
    aggregate: Mapping[str, Aggregation] | None = None,
) -> pl.DataFrame:
    """Aggregate ``source_tf`` bars into epoch-aligned ``target_tf`` bars.

    ``aggregate`` maps extra column names to a rule (first, last, min, max,
    sum, mean, any); unnamed extra columns take the last value.  The result
    has the input's columns in the same order plus ``n_bars`` (Int64).
    """
    per_bucket = bars_per_bucket(source_tf, target_tf)
    source_us = parse_timeframe(source_tf) // timedelta(microseconds=1)
    target_us = source_us * per_bucket
    _check_frame(frame, source_us, source_tf)
    rules = _rules(frame, aggregate)
    count = pl.col(N_BARS).sum() if N_BARS in frame.columns else pl.len()

    bars = (
        frame.sort(TIMESTAMP)
        .with_columns((pl.col(TIMESTAMP).dt.epoch("us") // target_us * target_us).alias(_BUCKET))
        .group_by(_BUCKET, maintain_order=True)
        .agg(
            *(_aggregate(column, rule) for column, rule in rules.items()),
            count.cast(pl.Int64).alias(N_BARS),
            pl.len().alias("__rows"),
        )
    )
    if complete_only:
        bars = bars.filter(pl.col("__rows") == per_bucket)
    timestamp = pl.from_epoch(pl.col(_BUCKET), time_unit="us").dt.replace_time_zone("UTC")
    ordered = [c for c in frame.columns if c not in (TIMESTAMP, N_BARS)]
    return bars.select(timestamp.cast(TIMESTAMP_DTYPE).alias(TIMESTAMP), *ordered, N_BARS)


def resample_dataset(dataset: Dataset, target_tf: str, *, complete_only: bool = True) -> Dataset:
    """Resample every series of a dataset to ``target_tf``; keys get the new timeframe."""
    out: dict[BarKey, pl.DataFrame] = {}
    for key, frame in dataset.series.items():
        new_key = BarKey(key.exchange, key.symbol, target_tf)
        if new_key in out:
            raise DataError(f"{dataset.name}: several series resample to {new_key}")
        out[new_key] = resample(frame, key.timeframe, target_tf, complete_only=complete_only)
    return Dataset(out, dataset.name)
