"""CcxtSource and CachedSource with the real ccxt client against a local fake Binance.

The fake serves real Binance BTC/USDT hourly bars for 2018-01-01 .. 2018-04-30 (2846 bars:
2880 hours minus the real outages of 2018-01-04 04:00 (1 bar) and 2018-02-08 01:00 ..
2018-02-09 09:00 (33 bars)).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.data.ccxt_source import (
    CachedSource,
    CcxtSource,
    RetryPolicy,
    cache_path,
    fetch_to_cache,
    make_exchange,
)
from features.data.registry import load_dataset
from features.data.schema import TIMESTAMP, BarKey, DataError
from tests.support.fake_binance import FakeBinance, ccxt_config

SERVED_FROM, SERVED_UNTIL = datetime(2018, 1, 1, tzinfo=UTC), datetime(2018, 5, 1, tzinfo=UTC)
KEY = BarKey("binance", "BTC/USDT", "1h")
KLINES = "/api/v3/klines"
HOUR = timedelta(hours=1)


def load_source_bars() -> pl.DataFrame:
    """The real bars the fake exchange serves: bundled Binance BTC/USDT 1h."""
    frame = load_dataset("binance_btc_1h").dataset[KEY]
    return frame.filter((pl.col(TIMESTAMP) >= SERVED_FROM) & (pl.col(TIMESTAMP) < SERVED_UNTIL))


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def between(frame: pl.DataFrame, start: datetime, end: datetime) -> pl.DataFrame:
    return frame.filter((pl.col(TIMESTAMP) >= start) & (pl.col(TIMESTAMP) < end))


@pytest.fixture(scope="module")
def bars() -> pl.DataFrame:
    return load_source_bars()


@pytest.fixture(scope="module")
def _server(bars: pl.DataFrame) -> Iterator[FakeBinance]:
    with FakeBinance({"BTC/USDT": bars}, interval="1h") as server:
        yield server


@pytest.fixture
def server(_server: FakeBinance) -> FakeBinance:
    _server.reset()
    return _server


class Sleeps(list[float]):
    """Records the waits the retry loop asks for instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make_source(server: FakeBinance, page_limit: int = 100, sleeps: Sleeps | None = None,
                attempts: int = 3, now: datetime | None = None) -> CcxtSource:
    return CcxtSource(
        "binance", ccxt_config(server), page_limit=page_limit,
        retry=RetryPolicy(attempts=attempts, base_delay=0.25, max_delay=30.0),
        sleep=sleeps if sleeps is not None else Sleeps(),
        clock=(lambda: now) if now else (lambda: datetime(2030, 1, 1, tzinfo=UTC)),
        progress=False,
    )


def test_served_window_has_the_known_outages(bars: pl.DataFrame) -> None:
    assert bars.height == 2880 - 1 - 33


def test_pagination_returns_exactly_the_source_bars(server: FakeBinance, bars: pl.DataFrame) -> None:
    start, end = datetime(2018, 1, 1, tzinfo=UTC), datetime(2018, 2, 1, tzinfo=UTC)
    expected = between(bars, start, end)
    assert expected.height == 744 - 1  # January has one missing hour

    got = make_source(server, page_limit=100).fetch(KEY, start, end)

    assert got.schema == expected.schema
    assert got.equals(expected)
    calls = server.requests_to(KLINES)
    assert len(calls) == math.ceil(743 / 100) == 8
    page_starts = expected[TIMESTAMP][::100].to_list()
    assert [int(c.params["startTime"]) for c in calls] == [ms(t) for t in page_starts]
    assert {c.params["endTime"] for c in calls} == {str(ms(end) - 1)}
    assert {c.params["limit"] for c in calls} == {"100"}
    assert {c.params["symbol"] for c in calls} == {"BTCUSDT"}


def test_still_open_last_bar_is_dropped(server: FakeBinance, bars: pl.DataFrame) -> None:
    now = datetime(2018, 1, 1, 5, 30, tzinfo=UTC)
    got = make_source(server, now=now).fetch(KEY, datetime(2018, 1, 1, tzinfo=UTC))
    assert got[TIMESTAMP].to_list() == [datetime(2018, 1, 1, h, tzinfo=UTC) for h in range(5)]
    assert server.requests_to(KLINES)[0].params["endTime"] == str(ms(now) - 1)


def test_gaps_pass_through_unfilled(server: FakeBinance, bars: pl.DataFrame) -> None:
    start, end = datetime(2018, 2, 7, tzinfo=UTC), datetime(2018, 2, 11, tzinfo=UTC)
    got = make_source(server).fetch(KEY, start, end)
    assert got.height == 96 - 33
    steps = got[TIMESTAMP].diff().drop_nulls()
    assert steps.max() == timedelta(hours=34)
    assert (steps == HOUR).sum() == got.height - 2
    gap_end = got.filter(got[TIMESTAMP].diff() > HOUR)[TIMESTAMP].to_list()
    assert gap_end == [datetime(2018, 2, 9, 10, tzinfo=UTC)]
    assert got.equals(between(bars, start, end))


def test_retries_a_503_then_succeeds(server: FakeBinance, bars: pl.DataFrame) -> None:
    sleeps = Sleeps()
    server.script(503, "Service Unavailable", path=KLINES)
    start, end = datetime(2018, 3, 1, tzinfo=UTC), datetime(2018, 3, 3, tzinfo=UTC)
    got = make_source(server, sleeps=sleeps).fetch(KEY, start, end)
    assert got.equals(between(bars, start, end))
    calls = server.requests_to(KLINES)
    assert [c.status for c in calls] == [503, 200]
    assert calls[0].params == calls[1].params
    assert sleeps == [0.25]
    assert server.pending_scripted == 0


def test_retries_a_429_honouring_retry_after(server: FakeBinance, bars: pl.DataFrame) -> None:
    sleeps = Sleeps()
    server.script(429, {"code": -1003, "msg": "Too many requests."}, headers={"Retry-After": "7"}, path=KLINES)
    server.script(500, "Internal Server Error", path=KLINES)
    start, end = datetime(2018, 3, 1, tzinfo=UTC), datetime(2018, 3, 3, tzinfo=UTC)
    got = make_source(server, sleeps=sleeps).fetch(KEY, start, end)
    assert got.equals(between(bars, start, end))
    calls = server.requests_to(KLINES)
    assert [c.status for c in calls] == [429, 500, 200]
    assert calls[0].params == calls[2].params
    assert sleeps == [7.0, 0.5]  # Retry-After beats the 0.25 s backoff; then 2 * 0.25
    assert server.pending_scripted == 0


def test_gives_up_after_bounded_attempts(server: FakeBinance) -> None:
    sleeps = Sleeps()
    server.script(503, "Service Unavailable", path=KLINES, times=3)
    with pytest.raises(DataError, match=r"BTC/USDT 1h .*still failing after 3 attempts"):
        make_source(server, sleeps=sleeps, attempts=3).fetch(KEY, datetime(2018, 3, 1, tzinfo=UTC))
    assert sleeps == [0.25, 0.5]
    assert len(server.requests_to(KLINES)) == 3


def test_unknown_symbol_is_a_data_error_naming_it(server: FakeBinance) -> None:
    with pytest.raises(DataError, match=r"no market 'DOGE/USDT'.*BTC/USDT"):
        make_source(server).fetch(BarKey("binance", "DOGE/USDT", "1h"), datetime(2018, 3, 1, tzinfo=UTC))
    assert server.requests_to(KLINES) == []


def test_exchange_rejecting_symbol_is_not_retried(server: FakeBinance) -> None:
    sleeps = Sleeps()
    server.script(400, {"code": -1121, "msg": "Invalid symbol."}, path=KLINES)
    with pytest.raises(DataError, match=r"BTC/USDT.*BadSymbol"):
        make_source(server, sleeps=sleeps).fetch(KEY, datetime(2018, 3, 1, tzinfo=UTC))
    assert sleeps == []
    assert len(server.requests_to(KLINES)) == 1


def test_unknown_exchange_and_timeframe_are_data_errors(server: FakeBinance) -> None:
    with pytest.raises(DataError, match="no-such-venue"):
        make_exchange("no-such-venue")
    with pytest.raises(DataError, match=r"no '7m' bars for BTC/USDT; it offers 1s, 1m, 3m"):
        make_source(server).fetch(BarKey("binance", "BTC/USDT", "7m"), datetime(2018, 3, 1, tzinfo=UTC))


def test_cache_reuses_and_extends_only_the_missing_part(server: FakeBinance, bars: pl.DataFrame,
                                                        tmp_path: Path) -> None:
    cached = CachedSource(make_source(server), tmp_path, clock=lambda: datetime(2030, 1, 1, tzinfo=UTC))
    start, end = datetime(2018, 3, 1, tzinfo=UTC), datetime(2018, 3, 11, tzinfo=UTC)

    first, added = cached.update(KEY, start, end)
    assert (first.height, added) == (240, 240)
    assert len(server.requests_to(KLINES)) == 3
    path = tmp_path / "binance" / "BTC-USDT_1h.parquet"
    assert cached.path_for(KEY) == cache_path(tmp_path, KEY) == path
    assert pl.read_parquet(path).equals(first)

    server.reset()
    again, added = cached.update(KEY, start, end)
    assert added == 0 and again.equals(first)
    assert server.requests_to(KLINES) == []

    wider_start, wider_end = start - timedelta(days=4), end + timedelta(days=4)
    wider, added = cached.update(KEY, wider_start, wider_end)
    assert added == 2 * 96
    assert wider.equals(between(bars, wider_start, wider_end))
    calls = server.requests_to(KLINES)
    assert [(int(c.params["startTime"]), int(c.params["endTime"])) for c in calls] == [
        (ms(wider_start), ms(start) - 1), (ms(end), ms(wider_end) - 1)]
    assert pl.read_parquet(path).equals(wider)
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temp file left behind


def test_failed_extension_leaves_the_cache_intact(server: FakeBinance, tmp_path: Path) -> None:
    cached = CachedSource(make_source(server, attempts=2), tmp_path)
    start, end = datetime(2018, 4, 1, tzinfo=UTC), datetime(2018, 4, 3, tzinfo=UTC)
    before, _ = cached.update(KEY, start, end)
    server.script(503, "Service Unavailable", path=KLINES, times=2)
    with pytest.raises(DataError, match="still failing"):
        cached.update(KEY, start, end + timedelta(days=1))
    assert pl.read_parquet(cached.path_for(KEY)).equals(before)


def test_fetch_to_cache_entry_point(server: FakeBinance, bars: pl.DataFrame, tmp_path: Path) -> None:
    start, end = datetime(2018, 4, 10), datetime(2018, 4, 12)  # naive datetimes are taken as UTC
    path, frame, added = fetch_to_cache("binance", "btc/usdt", "60m", start, end, tmp_path, ccxt_config(server))
    assert path == tmp_path / "binance" / "BTC-USDT_1h.parquet"
    assert (frame.height, added) == (48, 48)
    assert frame.equals(between(bars, start.replace(tzinfo=UTC), end.replace(tzinfo=UTC)))
    _, _, added_again = fetch_to_cache("binance", "BTC/USDT", "1h", start, end, tmp_path, ccxt_config(server))
    assert added_again == 0


@settings(max_examples=15, deadline=None)
@given(page_limit=st.integers(20, 400), offset=st.integers(0, 2800), length=st.integers(1, 500))
def test_any_paging_returns_the_source_span(_server: FakeBinance, bars: pl.DataFrame,
                                            page_limit: int, offset: int, length: int) -> None:
    _server.reset()
    start = SERVED_FROM + offset * HOUR
    end = start + length * HOUR
    got = make_source(_server, page_limit=page_limit).fetch(KEY, start, end)
    assert got.equals(between(bars, start, end))
    starts = [int(c.params["startTime"]) for c in _server.requests_to(KLINES)]
    assert starts == sorted(set(starts))
    assert len(starts) <= math.ceil(max(got.height, 1) / page_limit) + 1
