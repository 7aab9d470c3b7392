"""`mft data ...`: list, inspect, validate and fetch market data."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from tabulate import tabulate

from features.data.loader import SeriesHint
from features.data.registry import BUNDLED_DATASETS, LoadResult, load_dataset
from features.data.schema import TIMESTAMP, DataError, Dataset, parse_timeframe
from features.data.validate import ValidationReport

DEFAULT_CACHE = Path.home() / ".cache" / "mft" / "ohlcv"


def parse_date(text: str) -> datetime:
    """'2024-01-01' or a full ISO time; naive values are UTC."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as err:
        raise DataError(f"cannot read date {text!r}: use YYYY-MM-DD or an ISO-8601 time") from err
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def summarise(dataset: Dataset, reports: list[ValidationReport]) -> list[dict[str, object]]:
    """One row per series: span, bars, gaps, missing bars, zero-volume bars."""
    by_key = {r.key: r for r in reports}
    rows = []
    for key in dataset.keys:
        frame, report = dataset[key], by_key.get(key)
        bar = parse_timeframe(key.timeframe)
        start: datetime = frame[TIMESTAMP].min()  # type: ignore[assignment]
        end: datetime = frame[TIMESTAMP].max()  # type: ignore[assignment]
        expected = int((end - start) / bar) + 1 if frame.height else 0  # type: ignore[operator]
        rows.append({
            "exchange": key.exchange, "symbol": key.symbol, "timeframe": key.timeframe,
            "first bar": f"{start:%Y-%m-%d %H:%M}", "last bar": f"{end:%Y-%m-%d %H:%M}", "bars": frame.height,
            "gaps": len(report.gaps) if report else "-", "missing bars": expected - frame.height,
            "zero volume": int((frame["volume"] == 0).sum()),
        })
    return rows


def _hint(args: argparse.Namespace) -> SeriesHint:
    return SeriesHint(args.exchange, args.symbol, args.timeframe)


def _load(args: argparse.Namespace, strict: bool = False) -> LoadResult:
    return load_dataset(args.path, hint=_hint(args), strict=strict)


def cmd_info(args: argparse.Namespace) -> int:
    result = _load(args)
    print(tabulate(summarise(result.dataset, result.reports), headers="keys", tablefmt="github"))
    print(f"\nloaded and validated {len(result.dataset)} series in {result.seconds * 1000:.0f} ms")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    """Exit 0 on good data (gaps are warnings), 1 on errors, or on gaps with --strict."""
    try:
        result = _load(args)
    except DataError as err:
        for line in str(err).splitlines():
            print(f"ERROR {line}", file=sys.stderr)
        return 1
    warnings = [line for report in result.reports for line in report.lines()]
    for line in warnings[: args.max_warnings]:
        print(line)
    if len(warnings) > args.max_warnings:
        print(f"... and {len(warnings) - args.max_warnings} more warnings")
    bars = sum(f.height for f in result.dataset.series.values())
    print(f"{args.path}: {len(result.dataset)} series, {bars} bars, {len(warnings)} warnings, no errors")
    return 1 if args.strict and warnings else 0


def cmd_list(args: argparse.Namespace) -> int:
    rows = [{"name": name, "series": ", ".join(str(k) for k in keys)} for name, keys in BUNDLED_DATASETS.items()]
    print(tabulate(rows, headers="keys", tablefmt="github"))
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from features.data.ccxt_source import fetch_to_cache

    until = parse_date(args.until) if args.until else None
    path, frame, new = fetch_to_cache(args.exchange, args.symbol, args.timeframe, parse_date(args.since), until,
                                      Path(args.cache_dir))
    if frame.height:
        first: datetime = frame[TIMESTAMP].min()  # type: ignore[assignment]
        last: datetime = frame[TIMESTAMP].max()  # type: ignore[assignment]
        span = f"{first:%Y-%m-%d %H:%M} .. {last:%Y-%m-%d %H:%M}"
    else:
        span = "no bars"
    print(f"{args.exchange} {args.symbol} {args.timeframe}: {frame.height} bars ({span}), {new} newly fetched; "
          f"cache {path}")
    return 0


def cmd_resample(args: argparse.Namespace) -> int:
    from features.data.loader import write_bars
    from features.data.resample import resample

    result = _load(args)
    out = Path(args.out)
    for key in result.dataset.keys:
        frame = resample(result.dataset[key], key.timeframe, args.to, complete_only=not args.keep_partial)
        name = f"{key.symbol.replace('/', '')}_{args.to}{''.join(out.suffixes) or '.parquet'}"
        target = out if len(result.dataset) == 1 and out.suffix else out / key.exchange / name
        write_bars(frame, target)
        print(f"{key} -> {args.to}: {frame.height} bars written to {target}")
    return 0


def _add_hint_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="a bundled dataset name (see `mft data list`), a file or a folder")
    parser.add_argument("--exchange", help="exchange of a single-series file (default: its folder name)")
    parser.add_argument("--symbol", help="symbol of a single-series file (default: from its file name)")
    parser.add_argument("--timeframe", help="declared bar length, e.g. 1h (default: inferred)")


def register(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="list, inspect, validate and fetch OHLCV data")
    commands = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    info = commands.add_parser("info", help="symbols, timeframes, spans and gap counts")
    _add_hint_options(info)
    info.set_defaults(func=cmd_info)

    validate = commands.add_parser("validate", help="check a file; exit 0 if usable (gaps are warnings)")
    _add_hint_options(validate)
    validate.add_argument("--strict", action="store_true", help="treat gaps as errors")
    validate.add_argument("--max-warnings", type=int, default=20, help="warnings to print")
    validate.set_defaults(func=cmd_validate)

    listing = commands.add_parser("list", help="the bundled real datasets")
    listing.set_defaults(func=cmd_list)

    resample = commands.add_parser("resample", help="aggregate bars to a coarser timeframe (e.g. 1m -> 5m)")
    _add_hint_options(resample)
    resample.add_argument("--to", required=True, help="target timeframe, a whole multiple of the source")
    resample.add_argument("--out", required=True, help="output file (one series) or folder")
    resample.add_argument("--keep-partial", action="store_true", help="keep buckets missing source bars")
    resample.set_defaults(func=cmd_resample)

    fetch = commands.add_parser("fetch", help="download bars with ccxt into the local parquet cache")
    fetch.add_argument("--exchange", required=True, help="ccxt exchange id, e.g. binance")
    fetch.add_argument("--symbol", required=True, help="e.g. BTC/USDT")
    fetch.add_argument("--timeframe", default="1h")
    fetch.add_argument("--since", required=True, help="first bar, YYYY-MM-DD or ISO time (UTC)")
    fetch.add_argument("--until", help="end (exclusive), default now")
    fetch.add_argument("--cache-dir", default=str(DEFAULT_CACHE), help=f"default {DEFAULT_CACHE}")
    fetch.set_defaults(func=cmd_fetch)

