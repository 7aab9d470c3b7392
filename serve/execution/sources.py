"""Closed bars for the actor: a replay of a stored dataset, or the latest bars of an exchange via ccxt.

A source yields aligned rows - one closed bar of every instrument, all with the same open time -
in time order, and gives the history before a moment for warming features up.  A bar is closed
once its open time plus the timeframe has passed; a source never yields the bar still forming.
"""

from __future__ import annotations

import time as clock
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl

from features.data.schema import OHLCV_COLUMNS, TIMESTAMP, BarKey, DataError, Dataset, parse_timeframe
from serve.execution.records import BarRecord


@dataclass(frozen=True)
class BarRow:
    """One closed bar per instrument at ``time``; ``final``: the source has no later bar (replay end)."""

    time: datetime
    bars: Mapping[str, BarRecord]
    final: bool = False


class BarSource(ABC):
    keys: tuple[BarKey, ...]
    live: bool = False  # bars arrive as they close: loop latency counts from the bar's close

    @property
    def timeframe(self) -> str:
        return self.keys[0].timeframe

    @abstractmethod
    def history(self, before: datetime) -> Dataset:
        """Bars of every instrument with open time strictly before ``before``."""

    @abstractmethod
    def next_row(self, after: datetime | None) -> BarRow | None:
        """The first closed row after open time ``after`` (None: from the start); None if none yet."""

    @property
    def exhausted(self) -> bool:
        """True when no row will ever come again (the end of a replay)."""
        return False

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


def _records(frame: pl.DataFrame, key: BarKey) -> list[BarRecord]:
    return [BarRecord(key.instrument, ts, o, h, lo, c, v)
            for ts, o, h, lo, c, v in frame.select(TIMESTAMP, *OHLCV_COLUMNS).iter_rows()]


class ReplaySource(BarSource):
    """The rows of a stored dataset from the decision bar before ``start`` to ``end`` (exclusive).

    This is the span convention of ``mft backtest --start/--end``: the first decision is at the
    close of the bar before ``start`` and the first fill at the open of ``start``.
    """

    def __init__(self, dataset: Dataset, keys: Sequence[BarKey], start: datetime, end: datetime | None = None
                 ) -> None:
        self.keys = tuple(keys)
        self.dataset = Dataset({k: dataset[k] for k in self.keys}, dataset.name)
        frames = [dataset[k].select(TIMESTAMP) for k in self.keys]
        timeline = frames[0]
        for frame in frames[1:]:
            timeline = timeline.join(frame, on=TIMESTAMP, how="inner")
        times = timeline[TIMESTAMP].sort()
        if end is not None:
            times = times.filter(times < end)
        before = times.filter(times < start)
        if before.is_empty():
            raise DataError(f"{dataset.name}: no bar before the replay start {start.isoformat()}")
        self.start_time: datetime = before[-1]
        self.times: list[datetime] = times.filter(times >= self.start_time).to_list()
        if len(self.times) < 2:
            raise DataError(f"{dataset.name}: the replay from {start.isoformat()} has no bar to trade on")
        rows: dict[datetime, dict[str, BarRecord]] = {t: {} for t in self.times}
        for key in self.keys:
            span = dataset[key].filter(pl.col(TIMESTAMP).is_in(self.times))
            for record in _records(span, key):
                rows[record.bar_time][key.instrument] = record
        self._rows = rows
        self._position = 0

    def history(self, before: datetime) -> Dataset:
        return Dataset({k: f.filter(pl.col(TIMESTAMP) < before) for k, f in self.dataset.series.items()},
                       self.dataset.name)

    def next_row(self, after: datetime | None) -> BarRow | None:
        if after is not None:
            while self._position < len(self.times) and self.times[self._position] <= after:
                self._position += 1
        if self._position >= len(self.times):
            return None
        moment = self.times[self._position]
        self._position += 1
        return BarRow(moment, self._rows[moment], final=self._position == len(self.times))

    @property
    def exhausted(self) -> bool:
        return self._position >= len(self.times)


class CcxtBarSource(BarSource):
    """The latest closed bars of ``keys`` from a ccxt exchange client (one exchange per source)."""

    live = True

    def __init__(self, client: Any, keys: Sequence[BarKey], *, history_bars: int = 1000,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 on_api_call: Callable[[str, float, bool], None] | None = None) -> None:
        self.client, self.keys, self.history_bars = client, tuple(keys), int(history_bars)
        self.step = parse_timeframe(self.timeframe)
        self.now, self.on_api_call = now, on_api_call
        if len({k.timeframe for k in self.keys}) != 1:
            raise DataError("a bar source needs one timeframe for all instruments")

    def _fetch(self, key: BarKey, since: datetime | None, limit: int) -> pl.DataFrame:
        started, ok = clock.perf_counter(), False
        try:
            since_ms = None if since is None else int(since.timestamp() * 1000)
            rows = self.client.fetch_ohlcv(key.symbol, key.timeframe, since=since_ms, limit=limit)
            ok = True
        finally:
            if self.on_api_call is not None:
                self.on_api_call("fetch_ohlcv", clock.perf_counter() - started, ok)
        frame = pl.DataFrame(rows, schema=[TIMESTAMP, *OHLCV_COLUMNS], orient="row")
        frame = frame.with_columns(pl.from_epoch(pl.col(TIMESTAMP), "ms").dt.replace_time_zone("UTC"),
                                   *(pl.col(c).cast(pl.Float64) for c in OHLCV_COLUMNS))
        closed_before = self.now() - self.step  # bars opened after this are still forming
        return frame.filter(pl.col(TIMESTAMP) <= closed_before)

    def history(self, before: datetime) -> Dataset:
        since = before - self.step * self.history_bars
        frames = {k: self._fetch(k, since, self.history_bars).filter(pl.col(TIMESTAMP) < before) for k in self.keys}
        return Dataset(frames, f"{self.keys[0].exchange} history")

    def next_row(self, after: datetime | None) -> BarRow | None:
        since = None if after is None else after + self.step
        limit = 3 if after is None else 5  # the newest bar an exchange returns is usually still forming
        frames = {k: self._fetch(k, since, limit) for k in self.keys}
        if after is not None:
            frames = {k: f.filter(pl.col(TIMESTAMP) > after) for k, f in frames.items()}
        common: set[datetime] | None = None
        for frame in frames.values():
            stamps = set(frame[TIMESTAMP].to_list())
            common = stamps if common is None else common & stamps
        if not common:
            return None
        moment = min(common) if after is not None else max(common)
        bars = {k.instrument: next(r for r in _records(f, k) if r.bar_time == moment) for k, f in frames.items()}
        return BarRow(moment, bars)
