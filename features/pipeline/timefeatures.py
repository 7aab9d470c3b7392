"""Calendar features of the bar open time (UTC): hour of day, day of week, trading sessions.

Hour and weekday are cyclic encodings (sin, cos) so 23:00 sits next to 00:00.
Sessions are 0/1 flags on the UTC hour of the bar open; they overlap (Europe
with Asia and with America), as real trading hours do:

* Asia: 00:00-09:00 UTC (Tokyo, Hong Kong, Singapore business hours)
* Europe: 07:00-16:00 UTC (London, Frankfurt)
* America: 13:00-22:00 UTC (New York, Chicago)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import polars as pl

from features.data.schema import TIMESTAMP
from features.pipeline.base import BuildContext, Feature, Output, Scale

SESSIONS: dict[str, tuple[int, int]] = {"asia": (0, 9), "europe": (7, 16), "america": (13, 22)}
MINUTE_US = 60_000_000
MINUTES_PER_DAY = 24 * 60
EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday; Monday = 0


def _epoch_minutes() -> pl.Expr:
    # integer arithmetic on the UTC epoch is far cheaper than calendar accessors and sin/cos per row
    return pl.col(TIMESTAMP).dt.epoch("us") // MINUTE_US


def _cyclic(position: pl.Expr, period: int, fn: str) -> pl.Expr:
    """sin or cos of 2 pi position / period, looked up in a table of the ``period`` possible values."""
    table = [getattr(math, fn)(2 * math.pi * i / period) for i in range(period)]
    return pl.lit(pl.Series(table, dtype=pl.Float64)).gather(position)


def minute_of_day() -> pl.Expr:
    return _epoch_minutes() % MINUTES_PER_DAY


def hour_of_day() -> pl.Expr:
    return minute_of_day() // 60


def day_of_week() -> pl.Expr:
    return (_epoch_minutes() // MINUTES_PER_DAY + EPOCH_WEEKDAY) % 7


@dataclass(frozen=True)
class HourOfDay(Feature):
    group: ClassVar[str] = "time"
    kind: ClassVar[str] = "hour"

    @property
    def warmup(self) -> int:
        return 0

    def outputs(self) -> tuple[Output, ...]:
        return (Output("hour_sin", Scale.FIXED), Output("hour_cos", Scale.FIXED))

    def expressions(self, ctx: BuildContext) -> dict[str, pl.Expr]:
        minute = ctx.share("minute_of_day", minute_of_day())
        return {"hour_sin": _cyclic(minute, MINUTES_PER_DAY, "sin"),
                "hour_cos": _cyclic(minute, MINUTES_PER_DAY, "cos")}


@dataclass(frozen=True)
class DayOfWeek(Feature):
    group: ClassVar[str] = "time"
    kind: ClassVar[str] = "weekday"

    @property
    def warmup(self) -> int:
        return 0

    def outputs(self) -> tuple[Output, ...]:
        return (Output("dow_sin", Scale.FIXED), Output("dow_cos", Scale.FIXED))

    def expressions(self, ctx: BuildContext) -> dict[str, pl.Expr]:
        day = ctx.share("day_of_week", day_of_week())
        return {"dow_sin": _cyclic(day, 7, "sin"), "dow_cos": _cyclic(day, 7, "cos")}


@dataclass(frozen=True)
class Sessions(Feature):
    group: ClassVar[str] = "time"
    kind: ClassVar[str] = "sessions"

    @property
    def warmup(self) -> int:
        return 0

    def outputs(self) -> tuple[Output, ...]:
        return tuple(Output(f"session_{name}", Scale.FIXED) for name in SESSIONS)

    def expressions(self, ctx: BuildContext) -> dict[str, pl.Expr]:
        hour = ctx.share("hour_of_day", hour_of_day())
        return {f"session_{name}": ((hour >= start) & (hour < end)).cast(pl.Float64)
                for name, (start, end) in SESSIONS.items()}
