"""The one OHLCV bar schema every part of MFT reads.

A bar frame is a polars DataFrame with a UTC bar-open ``timestamp`` column
(``Datetime("us", "UTC")``), float64 ``open, high, low, close, volume``, and
any number of extra columns that are carried along untouched (for example
bid/ask or order-book depth columns).  A series is addressed by a
:class:`BarKey` of (exchange, symbol, timeframe); a :class:`Dataset` holds
many series, so one dataset can span several coins and several venues.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import polars as pl

TIMESTAMP = "timestamp"
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
OHLCV_COLUMNS: tuple[str, ...] = (*PRICE_COLUMNS, "volume")
REQUIRED_COLUMNS: tuple[str, ...] = (TIMESTAMP, *OHLCV_COLUMNS)
TIMESTAMP_DTYPE = pl.Datetime("us", "UTC")
FILLED_FLAG = "is_filled"

_TIMEFRAME_UNITS: dict[str, int] = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_TIMEFRAME_RE = re.compile(r"^(\d+)\s*(s|m|min|h|d|w)$")


class DataError(ValueError):
    """Bad market data or a bad data request; the message names the problem."""


def parse_timeframe(timeframe: str) -> timedelta:
    """Turn '1m', '5min', '1h', '4h', '1d' into a timedelta."""
    match = _TIMEFRAME_RE.match(timeframe.strip().lower())
    if not match:
        raise DataError(
            f"unknown timeframe {timeframe!r}: use a number and one of s, m, h, d, w (e.g. '5m', '1h')"
        )
    count, unit = int(match.group(1)), match.group(2)
    unit = "m" if unit == "min" else unit
    if count <= 0:
        raise DataError(f"timeframe {timeframe!r} must be positive")
    return timedelta(seconds=count * _TIMEFRAME_UNITS[unit])


def format_timeframe(delta: timedelta) -> str:
    """Canonical name of a bar length: 60s -> '1m', 3600s -> '1h', 86400s -> '1d'."""
    seconds = int(delta.total_seconds())
    if seconds <= 0:
        raise DataError(f"bar length must be positive, got {delta}")
    for unit in ("w", "d", "h", "m", "s"):
        size = _TIMEFRAME_UNITS[unit]
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    raise AssertionError("unreachable: every whole number of seconds has a unit")


def canonical_timeframe(timeframe: str) -> str:
    return format_timeframe(parse_timeframe(timeframe))


def bars_per_year(timeframe: str) -> float:
    """Crypto trades 24/7, 365 days a year: the annualisation factor for a bar length."""
    return timedelta(days=365) / parse_timeframe(timeframe)


@dataclass(frozen=True, order=True)
class BarKey:
    """Address of one bar series: a symbol on an exchange at a bar length."""

    exchange: str
    symbol: str
    timeframe: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "timeframe", canonical_timeframe(self.timeframe))
        object.__setattr__(self, "exchange", self.exchange.strip().lower())
        object.__setattr__(self, "symbol", self.symbol.strip().upper())

    @property
    def instrument(self) -> str:
        """Name of the tradable instrument, e.g. 'binance:BTC/USDT'."""
        return f"{self.exchange}:{self.symbol}"

    def __str__(self) -> str:
        return f"{self.exchange}:{self.symbol}@{self.timeframe}"

    @classmethod
    def parse(cls, text: str) -> BarKey:
        """Inverse of ``str``: 'binance:BTC/USDT@1h'."""
        try:
            venue, rest = text.split(":", 1)
            symbol, timeframe = rest.rsplit("@", 1)
        except ValueError as err:
            raise DataError(f"cannot read bar key {text!r}: expected 'exchange:SYMBOL@timeframe'") from err
        return cls(venue, symbol, timeframe)


@dataclass
class Dataset:
    """Bar series keyed by (exchange, symbol, timeframe), each sorted by time."""

    series: dict[BarKey, pl.DataFrame] = field(default_factory=dict)
    name: str = "dataset"

    def __iter__(self) -> Iterator[BarKey]:
        return iter(sorted(self.series))

    def __len__(self) -> int:
        return len(self.series)

    def __getitem__(self, key: BarKey | str) -> pl.DataFrame:
        return self.series[self.key(key)]

    @property
    def keys(self) -> list[BarKey]:
        return sorted(self.series)

    def key(self, wanted: BarKey | str) -> BarKey:
        """Find a key by BarKey, 'exchange:SYMBOL@tf', 'exchange:SYMBOL' or a bare symbol."""
        if isinstance(wanted, BarKey):
            if wanted in self.series:
                return wanted
            raise DataError(f"{self.name}: no series {wanted}; it has {self._names()}")
        matches = [k for k in self.series if wanted in (str(k), k.instrument, k.symbol)]
        if len(matches) == 1:
            return matches[0]
        problem = "no series" if not matches else "several series match"
        raise DataError(f"{self.name}: {problem} {wanted!r}; it has {self._names()}")

    def _names(self) -> str:
        return ", ".join(str(k) for k in self.keys) or "none"

    @property
    def timeframes(self) -> set[str]:
        return {k.timeframe for k in self.series}

    def span(self, key: BarKey) -> tuple[datetime, datetime]:
        ts = self.series[key][TIMESTAMP]
        return ts.min(), ts.max()  # type: ignore[return-value]

    def map(self, fn: Mapping[BarKey, pl.DataFrame] | None = None) -> Dataset:
        return Dataset(dict(fn or self.series), self.name)

    def slice_time(self, start: datetime | None = None, end: datetime | None = None) -> Dataset:
        """Bars with start <= bar open < end for every series (None leaves that side open)."""
        out: dict[BarKey, pl.DataFrame] = {}
        for key, frame in self.series.items():
            mask = pl.lit(True)
            if start is not None:
                mask = mask & (pl.col(TIMESTAMP) >= start)
            if end is not None:
                mask = mask & (pl.col(TIMESTAMP) < end)
            out[key] = frame.filter(mask)
        return Dataset(out, self.name)


def empty_bars() -> pl.DataFrame:
    return pl.DataFrame(
        schema={TIMESTAMP: TIMESTAMP_DTYPE, **{c: pl.Float64 for c in OHLCV_COLUMNS}}
    )
