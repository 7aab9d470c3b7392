"""Read OHLCV files (CSV, gzip CSV, parquet) into the bar schema.

A file holds one series, or many in long form with ``symbol`` (and optionally
``exchange`` and ``timeframe``) columns.  Column names are matched without
regard to case; ``date``, ``datetime``, ``time`` and ``open_time`` are
accepted for ``timestamp``.  Timestamps may be ISO-8601 strings (with ``Z`` or
an offset; naive ones are read as UTC) or integer epoch milliseconds.  Bad
cells are reported by file, line and column instead of a parser traceback.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from features.data.schema import (
    OHLCV_COLUMNS,
    REQUIRED_COLUMNS,
    TIMESTAMP,
    TIMESTAMP_DTYPE,
    BarKey,
    DataError,
    Dataset,
)
from features.data.validate import ROW, GapPolicy, ValidationReport, apply_gap_policy, validate_bars

TIMESTAMP_ALIASES = ("timestamp", "date", "datetime", "time", "open_time")
KEY_COLUMNS = ("exchange", "symbol", "timeframe")
SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")
_NAME_RE = re.compile(r"^(?P<symbol>[A-Za-z0-9]+?)[-_/]?(?P<quote>USDT|USDC|USD|BUSD|EUR|BTC|ETH)?"
                      r"(?:[_-](?P<tf>\d+(?:m|min|h|d|w)))?(?:[_-].*)?$")


@dataclass(frozen=True)
class SeriesHint:
    """What the caller knows about a file; None fields are inferred."""

    exchange: str | None = None
    symbol: str | None = None
    timeframe: str | None = None


def _read_raw(path: Path) -> pl.DataFrame:
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if not path.name.lower().endswith(SUFFIXES):
        raise DataError(f"{path}: unsupported file type; use one of {', '.join(SUFFIXES)}")
    try:
        if path.suffix in (".parquet", ".pq"):
            return pl.read_parquet(path)
        return pl.read_csv(path, infer_schema=False)  # all text: types are checked cell by cell below
    except (pl.exceptions.PolarsError, OSError) as err:
        raise DataError(f"{path}: cannot read file: {err}") from err


def _normalise_columns(frame: pl.DataFrame, path: Path) -> pl.DataFrame:
    lower = {c: c.strip().lower() for c in frame.columns}
    frame = frame.rename(lower)
    if TIMESTAMP not in frame.columns:
        alias = next((a for a in TIMESTAMP_ALIASES if a in frame.columns), None)
        if alias:
            frame = frame.rename({alias: TIMESTAMP})
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(
            f"{path}: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}; "
            f"found {', '.join(frame.columns)}"
        )
    return frame


def _bad_cell(frame: pl.DataFrame, parsed: pl.Series, column: str, path: Path, what: str) -> DataError:
    bad = frame.filter(parsed.is_null() & frame[column].is_not_null())
    first = bad.row(0, named=True)
    line = f", line {first[ROW] + 1}" if path.suffix not in (".parquet", ".pq") else ""
    return DataError(
        f"{path}: column '{column}', row {first[ROW]}{line}: cannot read {first[column]!r} as {what}"
        f" ({bad.height} bad cell{'s' if bad.height > 1 else ''} in this column)"
    )


def _parse_timestamps(frame: pl.DataFrame, path: Path) -> pl.Series:
    column = frame[TIMESTAMP]
    if column.dtype == pl.String:
        if column.str.contains(r"^\d+$").all():
            column = column.cast(pl.Int64)
        else:
            parsed = column.str.to_datetime(time_unit="us", time_zone="UTC", strict=False)
            if parsed.null_count() > column.null_count():
                raise _bad_cell(frame, parsed, TIMESTAMP, path, "an ISO-8601 timestamp")
            return parsed
    if column.dtype.is_integer():
        # Exchanges speak epoch milliseconds; a 10-digit number is seconds.
        unit_ms = column.abs().max() > 10**11  # type: ignore[operator]
        micros = column * (1000 if unit_ms else 1_000_000)
        return micros.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    if isinstance(column.dtype, pl.Datetime):
        if column.dtype.time_zone is None:  # type: ignore[union-attr]
            return column.dt.replace_time_zone("UTC").cast(TIMESTAMP_DTYPE)
        return column.dt.convert_time_zone("UTC").cast(TIMESTAMP_DTYPE)
    raise DataError(f"{path}: column '{TIMESTAMP}' has type {column.dtype}; expected text, integer or datetime")


def _parse_numbers(frame: pl.DataFrame, path: Path) -> pl.DataFrame:
    out = []
    for column in OHLCV_COLUMNS:
        series = frame[column]
        if series.dtype == pl.String:
            parsed = series.str.strip_chars().cast(pl.Float64, strict=False)
            if parsed.null_count() > series.null_count():
                raise _bad_cell(frame, parsed, column, path, "a number")
            series = parsed
        elif not series.dtype.is_numeric():
            raise DataError(f"{path}: column '{column}' has type {series.dtype}; expected numbers")
        out.append(series.cast(pl.Float64).alias(column))
    return frame.with_columns(out)


def _infer_key(path: Path, frame: pl.DataFrame, hint: SeriesHint, timeframe: str | None) -> BarKey:
    stem = path.name.split(".")[0]
    match = _NAME_RE.match(stem)
    symbol = hint.symbol
    if symbol is None and match:
        symbol = match.group("symbol").upper() + (f"/{match.group('quote').upper()}" if match.group("quote") else "")
    exchange = hint.exchange or (path.parent.name if path.parent.name not in ("", ".") else "file")
    tf = hint.timeframe or timeframe or (match.group("tf") if match and match.group("tf") else None)
    if tf is None:
        raise DataError(f"{path}: cannot tell the bar length (fewer than two bars); pass a timeframe")
    return BarKey(exchange, symbol or stem, tf)


def _split_series(frame: pl.DataFrame, path: Path, hint: SeriesHint) -> list[tuple[SeriesHint, pl.DataFrame]]:
    keys = [c for c in KEY_COLUMNS if c in frame.columns]
    if not keys:
        return [(hint, frame)]
    parts = []
    for values, part in frame.group_by(keys, maintain_order=True):
        found = dict(zip(keys, (str(v) for v in values), strict=True))
        parts.append((SeriesHint(found.get("exchange", hint.exchange), found.get("symbol", hint.symbol),
                                 found.get("timeframe", hint.timeframe)), part.drop(keys)))
    return parts


def read_bars(
    path: str | Path,
    hint: SeriesHint | None = None,
    *,
    gap_policy: GapPolicy | str = GapPolicy.LEAVE,
    strict: bool = False,
) -> tuple[Dataset, list[ValidationReport]]:
    """Read, type, validate one file; raise DataError on errors (and on gaps if strict)."""
    path = Path(path)
    hint = hint or SeriesHint()
    frame = _normalise_columns(_read_raw(path), path).with_row_index(ROW, offset=1)
    frame = _parse_numbers(frame.with_columns(_parse_timestamps(frame, path).alias(TIMESTAMP)), path)
    dataset, reports = Dataset(name=str(path)), []
    for part_hint, part in _split_series(frame, path, hint):
        report = validate_bars(part, str(path), part_hint.timeframe)
        reports.append(report)
        report.raise_for_errors()
        if strict and report.warnings:
            raise DataError("\n".join(i.format(str(path)) for i in report.warnings))
        key = _infer_key(path, part, part_hint, report.timeframe)
        report.key = key
        bars = part.drop(ROW).select(TIMESTAMP, *OHLCV_COLUMNS, pl.exclude(TIMESTAMP, *OHLCV_COLUMNS))
        dataset.series[key] = apply_gap_policy(bars, key.timeframe, gap_policy)
    return dataset, reports


def write_bars(frame: pl.DataFrame, path: str | Path) -> Path:
    """Write a bar frame atomically (temp file then rename) so a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if path.suffix in (".parquet", ".pq"):
        frame.write_parquet(tmp, compression="zstd")
    else:
        out = frame.with_columns(pl.col(TIMESTAMP).dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
        if path.name.endswith(".gz"):
            out.write_csv(tmp, compression="gzip", check_extension=False)
        else:
            out.write_csv(tmp)
    tmp.replace(path)
    return path
