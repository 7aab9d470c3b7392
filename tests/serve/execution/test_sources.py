"""Bar sources: the live ccxt source against a local Binance fake, and the replay span convention."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from features.data.registry import load_dataset
from features.data.schema import TIMESTAMP, BarKey, DataError
from serve.execution.sources import CcxtBarSource, ReplaySource
from tests.support.fake_binance import FakeBinance, binance_client

KEY = BarKey("binance", "BTC/USDT", "1h")
HOUR = timedelta(hours=1)
SERVED = (datetime(2022, 3, 1, tzinfo=UTC), datetime(2022, 3, 3, 13, tzinfo=UTC))  # up to the forming bar


@pytest.fixture(scope="module")
def bars() -> pl.DataFrame:
    frame = load_dataset("binance_btc_1h").dataset[KEY]
    return frame.filter((pl.col(TIMESTAMP) >= SERVED[0]) & (pl.col(TIMESTAMP) < SERVED[1]))


@pytest.fixture(scope="module")
def server(bars: pl.DataFrame) -> Iterator[FakeBinance]:
    with FakeBinance({"BTC/USDT": bars}, interval="1h") as fake:
        yield fake


def test_the_live_source_yields_only_closed_bars_in_order(server: FakeBinance, bars: pl.DataFrame) -> None:
    now = datetime(2022, 3, 3, 12, 30, tzinfo=UTC)  # the 12:00 bar is still forming
    calls: list[tuple[str, bool]] = []
    source = CcxtBarSource(binance_client(server), (KEY,), history_bars=24, now=lambda: now,
                           on_api_call=lambda method, seconds, ok: calls.append((method, ok)))
    latest = source.next_row(None)
    assert latest is not None and latest.time == datetime(2022, 3, 3, 11, tzinfo=UTC)
    expected = bars.filter(pl.col(TIMESTAMP) == latest.time).row(0, named=True)
    assert latest.bars[KEY.instrument].close == expected["close"]
    assert source.next_row(latest.time) is None  # nothing newer has closed yet
    now += HOUR  # 13:30: the 12:00 bar has closed
    following = source.next_row(latest.time)
    assert following is not None and following.time == latest.time + HOUR
    history = source.history(latest.time)[KEY]
    assert history.height == 24 and history[TIMESTAMP].max() == latest.time - HOUR
    assert calls and all(ok for _, ok in calls) and {m for m, _ in calls} == {"fetch_ohlcv"}


def test_replay_starts_with_the_decision_bar_before_start_and_flags_the_last() -> None:
    dataset = load_dataset("binance_btc_1h").dataset
    source = ReplaySource(dataset, (KEY,), datetime(2022, 3, 2, tzinfo=UTC), datetime(2022, 3, 3, tzinfo=UTC))
    rows = []
    while (row := source.next_row(rows[-1].time if rows else None)) is not None:
        rows.append(row)
    assert rows[0].time == datetime(2022, 3, 1, 23, tzinfo=UTC) and len(rows) == 25
    assert [r.final for r in rows] == [False] * 24 + [True] and source.exhausted
    assert source.history(rows[0].time)[KEY][TIMESTAMP].max() == rows[0].time - HOUR
    with pytest.raises(DataError, match="no bar before the replay start"):
        ReplaySource(dataset, (KEY,), datetime(2010, 1, 1, tzinfo=UTC))
