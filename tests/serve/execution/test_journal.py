"""The write-ahead journal: idempotent writes, order life cycle, recovery queries, reconciliation."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from features.data.schema import DataError
from serve.execution.book import Discrepancy, positions_from_fills, reconcile
from serve.execution.journal import Journal, JournalConflict
from serve.execution.records import (
    BarRecord,
    DecisionRecord,
    FillRecord,
    OrderRecord,
    OrderStatus,
    PositionSnapshot,
    client_order_id,
)

BTC, ETH = "binance:BTC/USDT", "binance:ETH/USDT"
T0 = datetime(2024, 3, 1, tzinfo=UTC)


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with Journal(f"sqlite:///{tmp_path / 'journal.db'}") as opened:
        yield opened


def bar(instrument: str, hour: int, close: float = 100.0) -> BarRecord:
    return BarRecord(instrument, T0 + timedelta(hours=hour), close, close + 1, close - 1, close, 10.0)


def fill(
    fill_id: str,
    order_id: str,
    quantity: float,
    price: float,
    fee: float = 0.0,
    hour: int = 0,
    instrument: str = BTC,
) -> FillRecord:
    return FillRecord(fill_id, order_id, instrument, quantity, price, fee, T0 + timedelta(hours=hour))


def test_sqlite_runs_in_wal_mode_with_full_sync(journal: Journal) -> None:
    with journal.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL


def test_order_write_is_idempotent_by_client_order_id(journal: Journal) -> None:
    order = OrderRecord("c1", BTC, 0.5, decision_id="d1")
    first = journal.record_order(order)
    journal.update_order("c1", OrderStatus.SUBMITTED)
    again = journal.record_order(order)  # a retry after a crash
    assert first.status is OrderStatus.NEW and again.status is OrderStatus.SUBMITTED
    assert [o.client_order_id for o in journal.orders()] == ["c1"]


def test_reusing_a_client_order_id_for_another_order_is_a_conflict(journal: Journal) -> None:
    journal.record_order(OrderRecord("c1", BTC, 0.5))
    with pytest.raises(JournalConflict, match=r"quantity: stored 0\.5, new 0\.7"):
        journal.record_order(OrderRecord("c1", BTC, 0.7))


def test_fills_are_booked_once_and_move_the_order_forward(journal: Journal) -> None:
    journal.record_order(OrderRecord("c1", BTC, 1.0))
    assert journal.record_fill(fill("f1", "c1", 0.4, 100.0, 0.04))
    assert not journal.record_fill(fill("f1", "c1", 0.4, 100.0, 0.04))  # duplicate report
    partial = journal.order("c1")
    assert partial is not None and (partial.status, partial.filled_quantity) == (
        OrderStatus.PARTIALLY_FILLED,
        0.4,
    )
    assert journal.record_fill(fill("f2", "c1", 0.6, 101.0, 0.06, hour=1))
    done = journal.order("c1")
    assert (
        done is not None and done.status is OrderStatus.FILLED and done.filled_quantity == pytest.approx(1.0)
    )
    assert [f.exchange_fill_id for f in journal.fills("c1")] == ["f1", "f2"]
    with pytest.raises(JournalConflict, match=r"price: stored 100\.0, new 99\.0"):
        journal.record_fill(fill("f1", "c1", 0.4, 99.0, 0.04))


def test_same_fill_id_on_another_instrument_is_a_different_fill(journal: Journal) -> None:
    assert journal.record_fill(fill("777", "x", 1.0, 10.0, instrument=BTC))
    assert journal.record_fill(fill("777", "y", 1.0, 10.0, instrument=ETH))
    assert len(journal.fills()) == 2


def test_status_updates_only_move_forward(journal: Journal) -> None:
    journal.record_order(OrderRecord("c1", BTC, 1.0))
    journal.update_order("c1", OrderStatus.OPEN, exchange_order_id="ex-9")
    stale = journal.update_order("c1", OrderStatus.SUBMITTED)  # late, out-of-order report: ignored
    assert (stale.status, stale.exchange_order_id) == (OrderStatus.OPEN, "ex-9")
    cancelled = journal.update_order("c1", OrderStatus.CANCELLED, reason="expired ttl")
    assert (cancelled.status, cancelled.reason) == (OrderStatus.CANCELLED, "expired ttl")
    assert journal.update_order("c1", "cancelled").status is OrderStatus.CANCELLED  # idempotent
    with pytest.raises(JournalConflict, match="already cancelled; cannot become filled"):
        journal.update_order("c1", OrderStatus.FILLED)
    with pytest.raises(JournalConflict, match="not in the journal"):
        journal.update_order("nope", OrderStatus.OPEN)


def test_open_orders_are_those_not_final(journal: Journal) -> None:
    for cid, status in [
        ("a", OrderStatus.NEW),
        ("b", OrderStatus.SUBMITTED),
        ("c", OrderStatus.REJECTED),
        ("d", OrderStatus.OPEN),
        ("e", OrderStatus.EXPIRED),
    ]:
        journal.record_order(OrderRecord(cid, BTC if cid != "d" else ETH, 1.0, status=status))
    assert [o.client_order_id for o in journal.open_orders()] == ["a", "b", "d"]
    assert [o.client_order_id for o in journal.open_orders(ETH)] == ["d"]


def test_last_processed_bar_per_instrument_and_unprocessed_bars(journal: Journal) -> None:
    for hour in range(3):
        journal.record_bar(bar(BTC, hour))
    journal.record_bar(bar(ETH, 0))
    assert not journal.record_bar(bar(BTC, 2))  # seen again after a restart
    journal.mark_bar_processed(BTC, T0)
    journal.mark_bar_processed(BTC, T0 + timedelta(hours=1))
    assert journal.last_processed_bars() == {BTC: T0 + timedelta(hours=1)}
    assert journal.last_seen_bars() == {BTC: T0 + timedelta(hours=2), ETH: T0}
    assert [(b.instrument, b.bar_time.hour) for b in journal.unprocessed_bars()] == [(ETH, 0), (BTC, 2)]
    with pytest.raises(JournalConflict, match="never journaled"):
        journal.mark_bar_processed(BTC, T0 + timedelta(hours=9))
    with pytest.raises(JournalConflict, match=r"\(open: stored 100.0, new 1.0, high: stored 101.0"):
        journal.record_bar(BarRecord(BTC, T0 + timedelta(hours=2), 1.0, 2.0, 0.5, 1.0, 1.0))


def test_positions_from_fills_use_average_cost(journal: Journal) -> None:
    journal.record_fill(fill("1", "a", 1.0, 100.0, 0.1, hour=0))
    journal.record_fill(fill("2", "b", 1.0, 110.0, 0.1, hour=1))  # avg (100 + 110) / 2 = 105
    journal.record_fill(fill("3", "c", -1.5, 120.0, 0.2, hour=2))  # realise 1.5 * (120 - 105) = 22.5
    journal.record_fill(fill("4", "d", -1.0, 90.0, 0.1, hour=3))  # close 0.5 (+7.5), open short 0.5 @ 90
    book = journal.positions_from_fills()[BTC]
    assert book.quantity == pytest.approx(-0.5)
    assert book.average_price == pytest.approx(90.0)
    assert book.realized_pnl == pytest.approx(22.5 + 0.5 * (90.0 - 105.0))
    assert book.fees == pytest.approx(0.5)
    assert book.fills == 4
    assert {f.exchange_fill_id for f in journal.orphan_fills()} == {"1", "2", "3", "4"}


def test_positions_from_fills_return_to_flat() -> None:
    book = positions_from_fills(
        [fill("1", "a", 0.3, 100.0), fill("2", "a", -0.1, 100.0), fill("3", "a", -0.2, 100.0)]
    )[BTC]
    assert (book.quantity, book.average_price, book.realized_pnl) == (0.0, 0.0, 0.0)


def test_snapshots_equity_and_day_start(journal: Journal) -> None:
    assert journal.latest_positions() is None
    journal.record_positions(
        T0 + timedelta(hours=1), [PositionSnapshot(BTC, 0.5, 100.0, 101.0)], 10_050.0, 50.0
    )
    journal.record_positions(
        T0 + timedelta(hours=2), [PositionSnapshot(BTC, 0.4, 100.0, 99.0)], 9_990.0, 60.0
    )
    assert journal.latest_positions() == (T0 + timedelta(hours=2), [PositionSnapshot(BTC, 0.4, 100.0, 99.0)])
    journal.record_positions(T0 + timedelta(days=1, hours=3), [], 9_900.0, 9_900.0)
    assert journal.latest_positions() == (T0 + timedelta(days=1, hours=3), [])  # flat at the last snapshot
    assert journal.day_start_equity(T0 + timedelta(hours=20)) == (T0 + timedelta(hours=1), 10_050.0)
    assert journal.day_start_equity(T0 + timedelta(days=1, hours=5)) == (
        T0 + timedelta(days=1, hours=3),
        9_900.0,
    )
    assert journal.day_start_equity(T0 - timedelta(days=1)) is None
    assert [e for _, e in journal.equity_curve()] == [10_050.0, 9_990.0, 9_900.0]


def test_decisions_and_events(journal: Journal) -> None:
    decision = DecisionRecord("run|2024-03-01T00", T0, {"weights": [0.5, -0.25]}, "ppo-v3")
    assert journal.record_decision(decision) and not journal.record_decision(decision)
    assert journal.decision(decision.decision_id) == decision
    journal.record_event("trading_state", {"state": "paused"}, T0)
    journal.record_event("trading_state", {"state": "frozen"}, T0 + timedelta(hours=1))
    last = journal.last_event("trading_state")
    assert last is not None and last.detail == {"state": "frozen"}
    assert journal.last_event("missing") is None


def test_naive_times_are_refused() -> None:
    with pytest.raises(DataError, match="timezone-aware"):
        BarRecord(BTC, datetime(2024, 3, 1), 1.0, 1.0, 1.0, 1.0, 1.0)


def test_client_order_ids_are_deterministic_and_short() -> None:
    first = client_order_id("paper", T0, BTC)
    assert first == client_order_id("paper", T0, BTC)
    assert first != client_order_id("paper", T0, BTC, leg=1) != client_order_id("live", T0, BTC)
    assert len(first) == 32 and first.isalnum()


def test_reconcile_lists_every_disagreement(journal: Journal) -> None:
    journal.record_order(OrderRecord("ours", BTC, 1.0, status=OrderStatus.SUBMITTED))
    found = reconcile(
        {BTC: 0.5, ETH: 1.0}, {BTC: 0.5, ETH: 0.9, "binance:XRP/USDT": 3.0}, journal.open_orders(), ["theirs"]
    )
    assert [str(d) for d in found] == [
        "position binance:ETH/USDT: journal 1.0, broker 0.9",
        "position binance:XRP/USDT: journal 0.0, broker 3.0",
        "missing_open_order ours: journal 'open', broker None",
        "unknown_open_order theirs: journal None, broker 'open'",
    ]
    assert reconcile({BTC: 0.5}, {BTC: 0.5 + 1e-12}, [], []) == list[Discrepancy]()


def test_journal_reopens_with_everything_it_committed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nested' / 'j.db'}"
    with Journal(url) as first:
        first.record_order(OrderRecord("c1", BTC, 1.0))
        first.record_fill(fill("f1", "c1", 1.0, 100.0))
    with Journal(url) as second:
        stored = second.order("c1")
        assert stored is not None and stored.status is OrderStatus.FILLED
        assert len(second.fills()) == 1
