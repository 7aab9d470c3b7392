"""Bar sources: the live ccxt source against a local Binance fake, and the replay span convention."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from features.data.registry import load_dataset
from features.data.schema import TIMESTAMP, BarKey, DataError, Dataset
from serve.execution.config import ExecutionConfig
from serve.execution.paper_broker import PaperBroker
from serve.execution.session import TradingSession
from serve.execution.sources import BarRow, CcxtBarSource, ReplaySource
from serve.execution.spec import TradingSpec
from tests.serve.execution.trading_support import MomentumRule, RuleDecider, write_run
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
    rows: list[BarRow] = []
    while (row := source.next_row(rows[-1].time if rows else None)) is not None:
        rows.append(row)
    assert rows[0].time == datetime(2022, 3, 1, 23, tzinfo=UTC) and len(rows) == 25
    assert [r.final for r in rows] == [False] * 24 + [True] and source.exhausted
    assert source.history(rows[0].time)[KEY][TIMESTAMP].max() == rows[0].time - HOUR
    with pytest.raises(DataError, match="no bar before the replay start"):
        ReplaySource(dataset, (KEY,), datetime(2010, 1, 1, tzinfo=UTC))


def test_paper_trading_on_live_bars_from_the_exchange(bars: pl.DataFrame, tmp_path: Path) -> None:
    """The whole loop on bars polled from the (fake) exchange as they close, with the paper broker."""
    dataset = load_dataset("binance_btc_1h").dataset
    history = dataset[KEY].filter(pl.col(TIMESTAMP) < SERVED[1])
    run = write_run(tmp_path / "run", Dataset({KEY: history}, "btc"))
    spec = TradingSpec.from_run(run)
    clock = [datetime(2022, 3, 3, 8, 30, tzinfo=UTC)]
    with FakeBinance({"BTC/USDT": history.tail(2000)}, interval="1h", clock=lambda: clock[0]) as fake:
        source = CcxtBarSource(binance_client(fake), spec.keys, history_bars=1000, now=lambda: clock[0])
        config = ExecutionConfig.from_dict({"journal": {"url": f"sqlite:///{tmp_path / 'journal.db'}"},
                                            "state_dir": str(tmp_path), "policy_run": str(run)})
        session = TradingSession.open(
            config, spec, source, RuleDecider(MomentumRule(spec)),
            lambda rows, times: PaperBroker(spec.keys, spec.env_config, history=rows, times=times))
        seen = []
        for _ in range(4):  # four hours pass; each poll finds the bar that just closed
            result = session.step()
            assert result is not None and session.step() is None  # nothing new until the next close
            seen.append(result.time)
            clock[0] += HOUR
    assert seen == [datetime(2022, 3, 3, h, tzinfo=UTC) for h in (7, 8, 9, 10)]
    assert result is not None and session.trader.live and result.decided  # latency counts from the bar close
    first_equity = session.trader.journal.equity_curve()[0][1]
    assert first_equity == spec.env_config.initial_cash and session.summary.decisions == 4
