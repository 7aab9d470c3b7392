"""External feature sources joined by time without look-ahead.

An :class:`ExternalSource` is any time-stamped feed (market-state scores from
news, funding rates, on-chain counts...): rows with a publication time and
numeric value columns, optionally a ``symbol`` column addressing one coin
(``BTC`` or ``BTC/USDT``; a null symbol means every coin).
Each bar sees the latest row published at or before the bar's *close*
(bar open + timeframe), plus an optional publication ``delay``: a score
published at 10:30 is first visible in the 10:00 bar, which closes at 11:00.
A value older than ``max_age`` counts as missing.  Missing values become
``fill_value`` and ``ext_<name>_available`` is 0 there, so rows never hold NaN.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import ClassVar

import polars as pl

from features.data.schema import TIMESTAMP, TIMESTAMP_DTYPE, DataError, parse_timeframe
from features.pipeline.base import BuildContext, FrameFeature, Output, Scale
from features.pipeline.cross_asset import base_asset

PUBLISHED = "__published"
VISIBLE = "__visible_at"
BAR_CLOSE = "__bar_close"


class ExternalSource(ABC):
    """A feed of time-stamped values; subclasses say where the rows come from."""

    name: str
    time_column: str = "published_at"
    columns: tuple[str, ...] | None = None  # value columns; None = every numeric column
    max_age: timedelta | None = None
    delay: timedelta = timedelta(0)
    fill_value: float = 0.0

    @abstractmethod
    def load(self) -> pl.DataFrame:
        """All rows known so far (called once per pipeline run, or once per bar in incremental mode)."""

    def frame(self) -> pl.DataFrame:
        """The rows, validated: a UTC ``__published`` time, float value columns, sorted by time."""
        raw = self.load()
        if self.time_column not in raw.columns:
            raise DataError(f"external source {self.name!r}: no time column {self.time_column!r}; "
                            f"columns are {', '.join(raw.columns)}")
        times = raw[self.time_column]
        if not isinstance(times.dtype, pl.Datetime):
            raise DataError(f"external source {self.name!r}: column {self.time_column!r} has type {times.dtype}; "
                            "expected a datetime")
        naive = times.dtype.time_zone is None
        times = times.dt.replace_time_zone("UTC") if naive else times.dt.convert_time_zone("UTC")
        values = self.value_columns(raw)
        out = raw.select(times.cast(TIMESTAMP_DTYPE).alias(PUBLISHED),
                         *(pl.col(c).cast(pl.Float64) for c in values),
                         *(["symbol"] if "symbol" in raw.columns else []))
        if out[PUBLISHED].null_count():
            raise DataError(f"external source {self.name!r}: {out[PUBLISHED].null_count()} rows without a time")
        return out.sort(PUBLISHED)

    def value_columns(self, raw: pl.DataFrame) -> list[str]:
        if self.columns is not None:
            missing = [c for c in self.columns if c not in raw.columns]
            if missing:
                raise DataError(f"external source {self.name!r}: missing value column(s) {', '.join(missing)}")
            return list(self.columns)
        skip = {self.time_column, "symbol"}
        found = [c for c, dtype in raw.schema.items() if c not in skip and dtype.is_numeric()]
        if not found:
            raise DataError(f"external source {self.name!r}: no numeric value columns")
        return found


@dataclass
class FrameSource(ExternalSource):
    """A source held in memory (tests, notebooks, a live feed appending rows)."""

    name: str
    data: pl.DataFrame
    time_column: str = "published_at"
    columns: tuple[str, ...] | None = None
    max_age: timedelta | None = None
    delay: timedelta = timedelta(0)
    fill_value: float = 0.0

    def load(self) -> pl.DataFrame:
        return self.data


@dataclass
class FileSource(ExternalSource):
    """A parquet or CSV file of rows (``published_at`` ISO-8601 text or datetime, value columns)."""

    name: str
    path: Path
    time_column: str = "published_at"
    columns: tuple[str, ...] | None = None
    max_age: timedelta | None = None
    delay: timedelta = timedelta(0)
    fill_value: float = 0.0

    def load(self) -> pl.DataFrame:
        path = Path(self.path)
        if not path.exists():
            raise DataError(f"external source {self.name!r}: no such file {path}")
        frame = pl.read_parquet(path) if path.suffix in (".parquet", ".pq") else pl.read_csv(path)
        if frame.schema.get(self.time_column) == pl.String:
            frame = frame.with_columns(pl.col(self.time_column).str.to_datetime(time_zone="UTC", time_unit="us"))
        return frame


@dataclass(frozen=True)
class ExternalFeature(FrameFeature):
    """The value columns of one source as features: ``ext_<name>_<column>`` and ``ext_<name>_available``."""

    source: ExternalSource
    value_names: tuple[str, ...]
    group: ClassVar[str] = "external"
    kind: ClassVar[str] = "external"

    @classmethod
    def of(cls, source: ExternalSource) -> ExternalFeature:
        return cls(source, tuple(source.value_columns(source.load())))

    @property
    def warmup(self) -> int:
        return 0

    def describe(self) -> str:
        return f"external({self.source.name}: {', '.join(self.value_names)})"

    def outputs(self) -> tuple[Output, ...]:
        prefix = f"ext_{self.source.name}"
        return (*(Output(f"{prefix}_{c}", Scale.FREE) for c in self.value_names),
                Output(f"{prefix}_available", Scale.FIXED))

    def rows_for(self, ctx: BuildContext) -> pl.DataFrame:
        rows = self.source.frame()
        if "symbol" in rows.columns:
            wanted = {ctx.series.symbol, base_asset(ctx.series.symbol)}
            mine = pl.col("symbol").is_null() | pl.col("symbol").str.to_uppercase().is_in(wanted)
            rows = rows.filter(mine).drop("symbol")
        return rows.with_columns((pl.col(PUBLISHED) + self.source.delay).alias(VISIBLE))

    def apply(self, frame: pl.LazyFrame, ctx: BuildContext) -> pl.LazyFrame:
        rows = self.rows_for(ctx).lazy().select(VISIBLE, *(pl.col(c).alias(f"__ext_{c}") for c in self.value_names))
        close = (pl.col(TIMESTAMP) + parse_timeframe(ctx.series.timeframe)).alias(BAR_CLOSE)
        joined = frame.with_columns(close).join_asof(
            rows, left_on=BAR_CLOSE, right_on=VISIBLE, strategy="backward", tolerance=self.source.max_age,
            coalesce=False,
        )
        seen = pl.col(VISIBLE).is_not_null()
        names = self.names
        values = {name: pl.when(seen).then(pl.col(f"__ext_{c}")).otherwise(None).fill_null(self.source.fill_value)
                  for name, c in zip(names, self.value_names, strict=False)}
        values[names[-1]] = seen.cast(pl.Float64)
        hidden = [BAR_CLOSE, VISIBLE, *(f"__ext_{c}" for c in self.value_names)]
        return joined.with_columns(**values).drop(hidden)


def source_from_config(name: str, path: str, time_column: str, columns: list[str] | None, max_age: str | None,
                       delay: str | None, fill_value: float) -> FileSource:
    return FileSource(name=name, path=Path(path), time_column=time_column,
                      columns=tuple(columns) if columns is not None else None,
                      max_age=parse_timeframe(max_age) if max_age else None,
                      delay=parse_timeframe(delay) if delay else timedelta(0), fill_value=fill_value)
