"""Recovery queries of the trading journal (the read side of :class:`serve.execution.journal.Journal`).

After a crash the actor asks: which orders are not final (:meth:`JournalReader.open_orders`),
what was the last processed bar of each instrument (:meth:`JournalReader.last_processed_bars`),
what do the fills say the positions are (:meth:`JournalReader.positions_from_fills`), what was
the last trading state (:meth:`JournalReader.last_event`), and the day's starting equity
(:meth:`JournalReader.day_start_equity`) for the daily-loss limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Row, func, select

from serve.execution import journal_schema as t
from serve.execution.book import BookPosition, positions_from_fills
from serve.execution.records import (
    FINAL_STATUSES,
    BarRecord,
    DecisionRecord,
    FillRecord,
    OrderRecord,
    OrderStatus,
    PositionSnapshot,
    require_utc,
)


@dataclass(frozen=True)
class EventRecord:
    time: datetime
    kind: str
    detail: Mapping[str, Any]


class JournalReader:
    """Queries over a journal database; :class:`~serve.execution.journal.Journal` adds the writes."""

    engine: Engine

    def order(self, client_order_id: str) -> OrderRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.orders).where(t.orders.c.client_order_id == client_order_id)).first()
        return None if row is None else _order_of(row)

    def open_orders(self, instrument: str | None = None) -> list[OrderRecord]:
        """Orders not yet final (new, submitted, open, partially filled), oldest first."""
        query = select(t.orders).where(t.orders.c.status.not_in([s.value for s in FINAL_STATUSES]))
        if instrument is not None:
            query = query.where(t.orders.c.instrument == instrument)
        with self.engine.connect() as conn:
            return [_order_of(r) for r in conn.execute(query.order_by(t.orders.c.id))]

    def orders(self, since: datetime | None = None) -> list[OrderRecord]:
        query = select(t.orders).order_by(t.orders.c.id)
        if since is not None:
            query = query.where(t.orders.c.created_at >= require_utc(since, "since"))
        with self.engine.connect() as conn:
            return [_order_of(r) for r in conn.execute(query)]

    def fills(self, client_order_id: str | None = None, since: datetime | None = None) -> list[FillRecord]:
        """Fills in time order (ties by journal order)."""
        query = select(t.fills).order_by(t.fills.c.filled_at, t.fills.c.id)
        if client_order_id is not None:
            query = query.where(t.fills.c.client_order_id == client_order_id)
        if since is not None:
            query = query.where(t.fills.c.filled_at >= require_utc(since, "since"))
        with self.engine.connect() as conn:
            return [_fill_of(r) for r in conn.execute(query)]

    def orphan_fills(self) -> list[FillRecord]:
        """Fills whose client order id the journal does not know (orders placed outside MFT)."""
        known = set(self._scalars(select(t.orders.c.client_order_id)))
        return [f for f in self.fills() if f.client_order_id not in known]

    def positions_from_fills(self) -> dict[str, BookPosition]:
        return positions_from_fills(self.fills())

    def last_processed_bars(self) -> dict[str, datetime]:
        """Per instrument, the open time of the last bar whose decision and orders were journaled."""
        query = (
            select(t.bars.c.instrument, func.max(t.bars.c.bar_time))
            .where(t.bars.c.processed_at.is_not(None))
            .group_by(t.bars.c.instrument)
        )
        return self._time_map(query)

    def processed_bar_times(self) -> list[datetime]:
        """Distinct open times of the bars processed so far, oldest first."""
        query = select(t.bars.c.bar_time).where(t.bars.c.processed_at.is_not(None)).distinct()
        with self.engine.connect() as conn:
            return sorted(row[0] for row in conn.execute(query))

    def last_seen_bars(self) -> dict[str, datetime]:
        return self._time_map(
            select(t.bars.c.instrument, func.max(t.bars.c.bar_time)).group_by(t.bars.c.instrument)
        )

    def unprocessed_bars(self) -> list[BarRecord]:
        """Bars journaled but not processed (the actor crashed between seeing and finishing them)."""
        query = select(t.bars).where(t.bars.c.processed_at.is_(None)).order_by(t.bars.c.bar_time, t.bars.c.id)
        with self.engine.connect() as conn:
            return [
                BarRecord(r.instrument, r.bar_time, r.open, r.high, r.low, r.close, r.volume)
                for r in conn.execute(query)
            ]

    def decision(self, decision_id: str) -> DecisionRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.decisions).where(t.decisions.c.decision_id == decision_id)).first()
        return None if row is None else DecisionRecord(row.decision_id, row.bar_time, row.payload, row.model)

    def latest_positions(self) -> tuple[datetime, list[PositionSnapshot]] | None:
        """The last snapshot (an empty list when it was flat), or None if none was taken."""
        with self.engine.connect() as conn:
            last = conn.execute(select(func.max(t.equity.c.taken_at))).scalar()
            if last is None:
                return None
            rows = conn.execute(
                select(t.positions).where(t.positions.c.taken_at == last).order_by(t.positions.c.id)
            )
            return last, [
                PositionSnapshot(r.instrument, r.quantity, r.average_price, r.mark_price) for r in rows
            ]

    def equity_curve(self, since: datetime | None = None) -> list[tuple[datetime, float]]:
        query = select(t.equity.c.taken_at, t.equity.c.equity).order_by(t.equity.c.taken_at, t.equity.c.id)
        if since is not None:
            query = query.where(t.equity.c.taken_at >= require_utc(since, "since"))
        with self.engine.connect() as conn:
            return [(r[0], r[1]) for r in conn.execute(query)]

    def day_start_equity(self, time: datetime) -> tuple[datetime, float] | None:
        """The first equity snapshot of the UTC day containing ``time``."""
        start = require_utc(time, "time").replace(hour=0, minute=0, second=0, microsecond=0)
        query = (
            select(t.equity.c.taken_at, t.equity.c.equity)
            .where((t.equity.c.taken_at >= start) & (t.equity.c.taken_at < start + timedelta(days=1)))
            .order_by(t.equity.c.taken_at, t.equity.c.id)
            .limit(1)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else (row[0], row[1])

    def events(self, kind: str | None = None, since: datetime | None = None) -> list[EventRecord]:
        query = select(t.events).order_by(t.events.c.time, t.events.c.id)
        if kind is not None:
            query = query.where(t.events.c.kind == kind)
        if since is not None:
            query = query.where(t.events.c.time >= require_utc(since, "since"))
        with self.engine.connect() as conn:
            return [EventRecord(r.time, r.kind, r.detail) for r in conn.execute(query)]

    def last_event(self, kind: str) -> EventRecord | None:
        """The event of ``kind`` written last (by insertion: replays write historical event times)."""
        query = select(t.events).where(t.events.c.kind == kind).order_by(t.events.c.id.desc()).limit(1)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else EventRecord(row.time, row.kind, row.detail)

    def _time_map(self, query: Any) -> dict[str, datetime]:
        with self.engine.connect() as conn:
            return {r[0]: r[1] for r in conn.execute(query)}

    def _scalars(self, query: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())


def _order_of(row: Row[Any]) -> OrderRecord:
    return OrderRecord(
        client_order_id=row.client_order_id,
        instrument=row.instrument,
        quantity=row.quantity,
        limit_price=row.limit_price,
        decision_id=row.decision_id,
        status=OrderStatus(row.status),
        exchange_order_id=row.exchange_order_id,
        filled_quantity=row.filled_quantity,
        reason=row.reason,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _fill_of(row: Row[Any]) -> FillRecord:
    return FillRecord(
        row.exchange_fill_id,
        row.client_order_id,
        row.instrument,
        row.quantity,
        row.price,
        row.fee,
        row.filled_at,
    )
