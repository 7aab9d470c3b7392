"""Named datasets: the bundled real data by name, or any file or folder by path.

``load_dataset("binance_1h")`` and ``load_dataset("path/to/bars.csv.gz")``
both give a validated :class:`Dataset`.  The names are the Hydra choices of the
``data`` config group (``configs/data/<name>.yaml``).
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import polars as pl

from features.data.bundle import BUNDLE_DIR, PROVENANCE_FILE
from features.data.loader import SUFFIXES, SeriesHint, read_bars
from features.data.schema import BarKey, DataError, Dataset
from features.data.validate import GapPolicy, ValidationReport, apply_gap_policy, validate_bars

BINANCE_COINS = ("BTC", "ETH", "BNB", "LTC", "XRP", "ADA")


def _binance(timeframe: str, coins: tuple[str, ...] = BINANCE_COINS) -> tuple[BarKey, ...]:
    return tuple(BarKey("binance", f"{coin}/USDT", timeframe) for coin in coins)


BUNDLED_DATASETS: dict[str, tuple[BarKey, ...]] = {
    "binance_1h": _binance("1h"),
    "binance_1d": _binance("1d"),
    "binance_btc_1h": _binance("1h", ("BTC",)),
    "binance_eth_1h": _binance("1h", ("ETH",)),
    "binance_btc_1d": _binance("1d", ("BTC",)),
    "bitstamp_btc_1h": (BarKey("bitstamp", "BTC/USD", "1h"),),
    "bitstamp_1d": tuple(BarKey("bitstamp", f"{c}/USD", "1d") for c in ("BTC", "ETH", "LTC")),
    "btc_two_venues_1h": (BarKey("binance", "BTC/USDT", "1h"), BarKey("bitstamp", "BTC/USD", "1h")),
    "kraken_btc_5m": (BarKey("kraken", "BTC/USD", "5m"),),
    "kraken_btc_15m": (BarKey("kraken", "BTC/USD", "15m"),),
    "kraken_btc_1h": (BarKey("kraken", "BTC/USD", "1h"),),
    "kraken_btcusdt_5m": (BarKey("kraken", "BTC/USDT", "5m"),),
    "binanceus_btc_1m": tuple(BarKey("binanceus", f"BTC/{q}", "1m") for q in ("USD", "USDT", "USDC")),
}


@dataclass
class LoadResult:
    dataset: Dataset
    reports: list[ValidationReport] = field(default_factory=list)
    seconds: float = 0.0


@cache
def provenance() -> dict[BarKey, dict[str, str]]:
    """Provenance rows of the bundled files, keyed by series."""
    with PROVENANCE_FILE.open() as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return {BarKey(r["exchange_id"], r["symbol"], r["timeframe"]): r for r in rows}


def _load_bundled(name: str, gap_policy: GapPolicy | str, strict: bool) -> LoadResult:
    dataset, reports = Dataset(name=name), []
    for key in BUNDLED_DATASETS[name]:
        path = BUNDLE_DIR / provenance()[key]["bundled_file"]
        frame = pl.read_parquet(path)
        report = validate_bars(frame, str(path.relative_to(BUNDLE_DIR.parent.parent)), key.timeframe)
        report.key = key
        report.raise_for_errors()
        if strict and report.warnings:
            raise DataError("\n".join(report.lines()))
        reports.append(report)
        dataset.series[key] = apply_gap_policy(frame, key.timeframe, gap_policy)
    return LoadResult(dataset, reports)


def _load_path(path: Path, hint: SeriesHint, gap_policy: GapPolicy | str, strict: bool) -> LoadResult:
    files = sorted(p for p in path.rglob("*") if p.name.lower().endswith(SUFFIXES)) if path.is_dir() else [path]
    if not files:
        raise DataError(f"{path}: folder holds no {', '.join(SUFFIXES)} files")
    dataset, reports = Dataset(name=str(path)), []
    for file in files:
        part, part_reports = read_bars(file, hint, gap_policy=gap_policy, strict=strict)
        clash = set(part.series) & set(dataset.series)
        if clash:
            raise DataError(f"{file}: series {', '.join(map(str, clash))} already read from another file")
        dataset.series.update(part.series)
        reports.extend(part_reports)
    return LoadResult(dataset, reports)


def load_dataset(
    spec: str | Path,
    *,
    symbols: list[str] | None = None,
    gap_policy: GapPolicy | str = GapPolicy.LEAVE,
    strict: bool = False,
    hint: SeriesHint | None = None,
) -> LoadResult:
    """Load a bundled dataset by name, or a file or folder by path, validated."""
    started = time.perf_counter()
    if str(spec) in BUNDLED_DATASETS:
        result = _load_bundled(str(spec), gap_policy, strict)
    elif Path(spec).exists():
        result = _load_path(Path(spec), hint or SeriesHint(), gap_policy, strict)
    else:
        raise DataError(
            f"unknown dataset {str(spec)!r}: not a file or folder, and not a bundled name "
            f"({', '.join(sorted(BUNDLED_DATASETS))})"
        )
    if symbols:
        wanted = {result.dataset.key(s) for s in symbols}
        result.dataset.series = {k: v for k, v in result.dataset.series.items() if k in wanted}
    result.seconds = time.perf_counter() - started
    return result
