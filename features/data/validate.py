"""Validation of bar frames: every problem named by file, row and column.

Errors make data unusable (unsorted or duplicate timestamps, impossible
prices, negative volume, mixed bar lengths); gaps are real exchange outages
and are warnings unless the caller is strict.  Nothing here repairs data: a
gap policy is applied only when the user picks one (see :func:`apply_gap_policy`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

import polars as pl

from features.data.schema import (
    FILLED_FLAG,
    OHLCV_COLUMNS,
    PRICE_COLUMNS,
    REQUIRED_COLUMNS,
    TIMESTAMP,
    BarKey,
    DataError,
    format_timeframe,
    parse_timeframe,
)

ROW = "__row"  # 1-based data row of the source file, carried for messages only
MAX_LISTED = 5


class GapPolicy(StrEnum):
    """What to do with missing bars; the user picks, nothing is silent."""

    LEAVE = "leave"  # keep the bars as they are; a step may span an outage
    FFILL = "ffill"  # insert flat bars at the last close, volume 0, flagged in `is_filled`
    DROP = "drop"  # keep only the longest gap-free span


@dataclass(frozen=True)
class Issue:
    kind: str
    message: str
    rows: tuple[int, ...] = ()
    column: str | None = None

    def format(self, source: str) -> str:
        where = f" (column '{self.column}')" if self.column else ""
        return f"{source}: {self.kind}{where}: {self.message}"


@dataclass
class ValidationReport:
    source: str
    timeframe: str | None = None
    key: BarKey | None = None  # set once the series is identified
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def gaps(self) -> list[Issue]:
        return [w for w in self.warnings if w.kind == "gap"]

    def lines(self) -> list[str]:
        return [f"ERROR {i.format(self.source)}" for i in self.errors] + [
            f"WARNING {i.format(self.source)}" for i in self.warnings
        ]

    def raise_for_errors(self) -> None:
        if self.errors:
            raise DataError("\n".join(i.format(self.source) for i in self.errors))


def _row_list(frame: pl.DataFrame, mask: pl.Expr) -> tuple[int, ...]:
    return tuple(frame.filter(mask)[ROW].head(MAX_LISTED + 1).to_list())


def _describe_rows(rows: tuple[int, ...], count: int) -> str:
    shown = ", ".join(str(r) for r in rows[:MAX_LISTED])
    more = f" and {count - MAX_LISTED} more" if count > MAX_LISTED else ""
    return f"row{'s' if count > 1 else ''} {shown}{more}"


def _check(frame: pl.DataFrame, kind: str, mask: pl.Expr, what: str, column: str | None) -> Issue | None:
    count = int(frame.select(mask.sum()).item())
    if count == 0:
        return None
    rows = _row_list(frame, mask)
    return Issue(kind, f"{what} at {_describe_rows(rows, count)}", rows, column)


def _value_checks(frame: pl.DataFrame) -> list[Issue]:
    checks: list[tuple[str, pl.Expr, str, str | None]] = []
    for col in PRICE_COLUMNS:
        value = pl.col(col)
        checks.append(("non-finite price", value.is_null() | ~value.is_finite(), "missing, NaN or infinite", col))
        checks.append(("non-positive price", value <= 0, "price <= 0", col))
    vol = pl.col("volume")
    checks.append(("non-finite volume", vol.is_null() | ~vol.is_finite(), "missing, NaN or infinite", "volume"))
    checks.append(("negative volume", vol < 0, "volume < 0", "volume"))
    high, low = pl.col("high"), pl.col("low")
    checks.append(("high below low", high < low, "high < low", "high"))
    checks.append(
        ("high below open/close", high < pl.max_horizontal("open", "close"), "high < max(open, close)", "high")
    )
    checks.append(
        ("low above open/close", low > pl.min_horizontal("open", "close"), "low > min(open, close)", "low")
    )
    found = (_check(frame, kind, mask, what, col) for kind, mask, what, col in checks)
    return [issue for issue in found if issue is not None]


def infer_timeframe(frame: pl.DataFrame) -> str | None:
    """The bar length: the smallest positive step between timestamps."""
    steps = frame[TIMESTAMP].diff().drop_nulls()
    steps = steps.filter(steps > timedelta(0))
    if steps.len() == 0:
        return None
    return format_timeframe(steps.min())  # type: ignore[arg-type]


def _time_checks(frame: pl.DataFrame, timeframe: str | None) -> tuple[list[Issue], list[Issue]]:
    errors: list[Issue] = []
    step = pl.col(TIMESTAMP).diff()
    for kind, mask, what in (
        ("unsorted timestamps", step < timedelta(0), "timestamp earlier than the row before"),
        ("duplicate timestamps", step == timedelta(0), "same timestamp as the row before"),
    ):
        issue = _check(frame, kind, mask.fill_null(False), what, TIMESTAMP)
        if issue:
            errors.append(issue)
    if errors or timeframe is None:
        return errors, []
    bar = parse_timeframe(timeframe)
    inferred = infer_timeframe(frame)
    off_grid = (step.dt.total_microseconds() % int(bar.total_seconds() * 1e6)) != 0
    issue = _check(frame, "mixed timeframes", off_grid.fill_null(False), f"step is not a multiple of {timeframe}",
                   TIMESTAMP)
    if issue is None and inferred is not None and parse_timeframe(inferred) < bar:
        issue = Issue("mixed timeframes", f"bars {inferred} apart in a {timeframe} series", (), TIMESTAMP)
    if issue:
        return [issue], []
    return [], _gap_warnings(frame, bar)


def _gap_warnings(frame: pl.DataFrame, bar: timedelta) -> list[Issue]:
    gaps = frame.with_columns(
        (pl.col(TIMESTAMP).diff() / bar).cast(pl.Int64).alias("__steps"),
        pl.col(TIMESTAMP).shift(1).alias("__prev"),
    ).filter(pl.col("__steps") > 1)
    return [
        Issue(
            "gap",
            f"{steps - 1} missing bar{'s' if steps > 2 else ''} after {prev:%Y-%m-%d %H:%M} "
            f"(next bar {ts:%Y-%m-%d %H:%M}, row {row})",
            (row,),
            TIMESTAMP,
        )
        for steps, prev, ts, row in gaps.select("__steps", "__prev", TIMESTAMP, ROW).iter_rows()
    ]


def validate_bars(frame: pl.DataFrame, source: str, timeframe: str | None = None) -> ValidationReport:
    """Check one bar series (already typed); `frame` may carry a ROW column for messages."""
    report = ValidationReport(source, timeframe)
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        report.errors.append(
            Issue("missing columns", f"{', '.join(missing)} not found; columns are {', '.join(frame.columns)}")
        )
        return report
    if ROW not in frame.columns:
        frame = frame.with_row_index(ROW, offset=1)
    report.errors.extend(_value_checks(frame))
    report.timeframe = timeframe or infer_timeframe(frame)
    errors, warnings = _time_checks(frame, report.timeframe)
    report.errors.extend(errors)
    report.warnings.extend(warnings)
    return report


def apply_gap_policy(frame: pl.DataFrame, timeframe: str, policy: GapPolicy | str) -> pl.DataFrame:
    """Handle missing bars the way the user chose; returns a new frame."""
    policy = GapPolicy(policy)
    if policy is GapPolicy.LEAVE or frame.height < 2:
        return frame
    bar = parse_timeframe(timeframe)
    if policy is GapPolicy.DROP:
        segment = (pl.col(TIMESTAMP).diff() > bar).fill_null(False).cum_sum().alias("__segment")
        with_segments = frame.with_columns(segment)
        longest = with_segments["__segment"].value_counts(sort=True)["__segment"][0]
        return with_segments.filter(pl.col("__segment") == longest).drop("__segment")
    first: datetime = frame[TIMESTAMP].min()  # type: ignore[assignment]
    last: datetime = frame[TIMESTAMP].max()  # type: ignore[assignment]
    grid = pl.DataFrame({TIMESTAMP: pl.datetime_range(first, last, bar, eager=True, time_unit="us", time_zone="UTC")})
    joined = grid.join(frame, on=TIMESTAMP, how="left").with_columns(pl.col("close").is_null().alias(FILLED_FLAG))
    last_close = pl.col("close").forward_fill()
    filled = joined.with_columns(
        *(pl.col(c).fill_null(last_close) for c in PRICE_COLUMNS),
        pl.col("volume").fill_null(0.0),
    )
    extras = [c for c in frame.columns if c not in (TIMESTAMP, *OHLCV_COLUMNS)]
    return filled.with_columns(pl.col(c).forward_fill() for c in extras if c != ROW)
