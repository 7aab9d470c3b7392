"""The write-ahead trading journal: every bar, decision, order, fill and position, committed before acting.

Each write method runs in its own transaction and returns only once it is
committed, so the actor's rule is simply "journal, then act": an order is
written (status ``new``) before it is sent, a fill is written before the
position it changes is used.  After a crash the journal answers the recovery
questions: which orders are not final, what was the last processed bar of each
instrument, what do the fills say the positions are, what was the trading
state.

Writes are idempotent by their natural keys: writing an order with a client
order id already journaled returns the stored order (or raises
:class:`JournalConflict` if the content differs), and a fill with a known
exchange fill id is not booked twice.  SQLite (the default) runs in WAL mode
with ``synchronous=FULL``; any SQLAlchemy URL works.  One process writes a
journal at a time (the actor); readers may share it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Row, create_engine, event, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import StaticPool

from features.data.schema import DataError
from serve.execution import journal_schema as t
from serve.execution.journal_read import EventRecord, JournalReader
from serve.execution.records import (
    BarRecord,
    DecisionRecord,
    FillRecord,
    OrderRecord,
    OrderStatus,
    PositionSnapshot,
    require_utc,
    utc_now,
)

__all__ = ["DEFAULT_URL", "EventRecord", "Journal", "JournalConflict", "JournalReader", "make_engine"]
log = logging.getLogger(__name__)
DEFAULT_URL = "sqlite:///runs/journal.db"
_FILL_TOLERANCE = 1e-9


class JournalConflict(DataError):
    """A key reused for different content, or an order status moving out of a final state."""


def _sqlite_pragmas(synchronous: str) -> Any:
    def on_connect(dbapi_connection: Any, _: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.close()

    return on_connect


def make_engine(url: str, synchronous: str = "FULL") -> Engine:
    """An engine for ``url``; SQLite gets WAL, durable commits and its folder created."""
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    if synchronous.upper() not in ("FULL", "NORMAL", "EXTRA"):
        raise DataError(f"journal synchronous must be FULL, NORMAL or EXTRA, got {synchronous!r}")
    database = url.split("///", 1)[1] if "///" in url else ""
    if database in ("", ":memory:"):
        engine = create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False})
    event.listen(engine, "connect", _sqlite_pragmas(synchronous.upper()))
    return engine


class Journal(JournalReader):
    """Append-mostly record of live trading with recovery queries (see the module docstring)."""

    def __init__(self, url: str = DEFAULT_URL, *, synchronous: str = "FULL") -> None:
        self.url = url
        self.engine = make_engine(url, synchronous)
        t.metadata.create_all(self.engine)
        self._check_version()

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_version(self) -> None:
        with self.engine.begin() as conn:
            stored = conn.execute(select(t.meta.c.value).where(t.meta.c.key == "schema_version")).scalar()
            if stored is None:
                conn.execute(insert(t.meta).values(key="schema_version", value=str(t.SCHEMA_VERSION)))
            elif int(stored) != t.SCHEMA_VERSION:
                raise DataError(
                    f"journal {self.url} has schema version {stored}, this MFT reads {t.SCHEMA_VERSION}"
                )

    # -- writes: each one committed before it returns -------------------------------------------
    def record_bar(self, bar: BarRecord) -> bool:
        """Journal a closed bar; False if it was already journaled (same instrument and time)."""
        values = {**_bar_values(bar), "recorded_at": utc_now()}
        return self._insert_once(
            t.bars,
            values,
            (t.bars.c.instrument == bar.instrument) & (t.bars.c.bar_time == bar.bar_time),
            what=f"bar {bar.instrument} {bar.bar_time}",
            same=("open", "high", "low", "close", "volume"),
        )

    def mark_bar_processed(self, instrument: str, bar_time: datetime) -> None:
        """The bar's decision and orders are journaled: recovery resumes after it."""
        with self.engine.begin() as conn:
            done = conn.execute(
                update(t.bars)
                .where(
                    (t.bars.c.instrument == instrument)
                    & (t.bars.c.bar_time == require_utc(bar_time, "bar_time"))
                )
                .values(processed_at=utc_now())
            )
        if done.rowcount != 1:
            raise JournalConflict(
                f"cannot mark bar {instrument} {bar_time} processed: it was never journaled"
            )

    def record_decision(self, decision: DecisionRecord) -> bool:
        values = {
            "decision_id": decision.decision_id,
            "bar_time": decision.bar_time,
            "model": decision.model,
            "payload": dict(decision.payload),
            "recorded_at": utc_now(),
        }
        return self._insert_once(
            t.decisions,
            values,
            t.decisions.c.decision_id == decision.decision_id,
            what=f"decision {decision.decision_id}",
            same=("bar_time", "model", "payload"),
        )

    def record_order(self, order: OrderRecord) -> OrderRecord:
        """Journal an order before sending it; the same client order id again returns the stored order."""
        values = {
            "client_order_id": order.client_order_id,
            "decision_id": order.decision_id,
            "instrument": order.instrument,
            "quantity": order.quantity,
            "limit_price": order.limit_price,
            "status": order.status.value,
            "exchange_order_id": order.exchange_order_id,
            "filled_quantity": order.filled_quantity,
            "reason": order.reason,
            "created_at": order.created_at,
            "updated_at": order.updated_at or order.created_at,
        }
        self._insert_once(
            t.orders,
            values,
            t.orders.c.client_order_id == order.client_order_id,
            what=f"order {order.client_order_id}",
            same=("decision_id", "instrument", "quantity", "limit_price"),
        )
        stored = self.order(order.client_order_id)
        assert stored is not None  # just written or already there
        return stored

    def update_order(
        self,
        client_order_id: str,
        status: OrderStatus | str,
        *,
        exchange_order_id: str | None = None,
        reason: str = "",
    ) -> OrderRecord:
        """Move an order forward; stale (backward) updates are ignored, changing a final status conflicts."""
        new = OrderStatus(status)
        with self.engine.begin() as conn:
            current = self._order_row(conn, client_order_id)
            old = OrderStatus(current.status)
            if old.is_final and new is not old:
                raise JournalConflict(
                    f"order {client_order_id} is already {old.value}; cannot become {new.value}"
                )
            if new.rank < old.rank or (new is old and exchange_order_id in (None, current.exchange_order_id)):
                log.debug("ignoring stale update of %s: %s -> %s", client_order_id, old.value, new.value)
            else:
                conn.execute(
                    update(t.orders)
                    .where(t.orders.c.client_order_id == client_order_id)
                    .values(
                        status=new.value,
                        updated_at=utc_now(),
                        reason=reason or current.reason,
                        exchange_order_id=exchange_order_id or current.exchange_order_id,
                    )
                )
        stored = self.order(client_order_id)
        assert stored is not None
        return stored

    def record_fill(self, fill: FillRecord) -> bool:
        """Book a fill and its order's filled quantity in one transaction; False if already booked."""
        values = {
            "exchange_fill_id": fill.exchange_fill_id,
            "client_order_id": fill.client_order_id,
            "instrument": fill.instrument,
            "quantity": fill.quantity,
            "price": fill.price,
            "fee": fill.fee,
            "filled_at": fill.filled_at,
            "recorded_at": utc_now(),
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(t.fills).values(**values))
                self._apply_fill_to_order(conn, fill)
            return True
        except IntegrityError:
            self._require_same(
                t.fills,
                (t.fills.c.instrument == fill.instrument)
                & (t.fills.c.exchange_fill_id == fill.exchange_fill_id),
                values,
                ("client_order_id", "quantity", "price", "fee"),
                f"fill {fill.exchange_fill_id}",
            )
            return False

    def record_positions(
        self, taken_at: datetime, snapshot: Sequence[PositionSnapshot], equity: float, cash: float
    ) -> None:
        """Positions and equity at one moment, in one transaction."""
        taken_at = require_utc(taken_at, "snapshot time")
        with self.engine.begin() as conn:
            if snapshot:
                conn.execute(
                    insert(t.positions),
                    [
                        {
                            "taken_at": taken_at,
                            "instrument": p.instrument,
                            "quantity": p.quantity,
                            "average_price": p.average_price,
                            "mark_price": p.mark_price,
                        }
                        for p in snapshot
                    ],
                )
            conn.execute(insert(t.equity).values(taken_at=taken_at, equity=equity, cash=cash))

    def record_event(
        self, kind: str, detail: Mapping[str, Any] | None = None, time: datetime | None = None
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(t.events).values(time=time or utc_now(), kind=kind, detail=dict(detail or {}))
            )

    # -- internals ------------------------------------------------------------------------------
    def _insert_once(
        self, table: Any, values: Mapping[str, Any], key: Any, *, what: str, same: Iterable[str]
    ) -> bool:
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(table).values(**values))
            return True
        except IntegrityError:
            self._require_same(table, key, values, tuple(same), what)
            return False

    def _require_same(
        self, table: Any, key: Any, values: Mapping[str, Any], same: tuple[str, ...], what: str
    ) -> None:
        with self.engine.connect() as conn:
            row = conn.execute(select(table).where(key)).first()
        if row is None:
            raise JournalConflict(f"{what}: the database refused the write, but no row has its key")
        differing = [c for c in same if getattr(row, c) != values[c]]
        if differing:
            detail = ", ".join(f"{c}: stored {getattr(row, c)!r}, new {values[c]!r}" for c in differing)
            raise JournalConflict(f"{what} is already journaled with different content ({detail})")

    def _apply_fill_to_order(self, conn: Connection, fill: FillRecord) -> None:
        row = conn.execute(select(t.orders).where(t.orders.c.client_order_id == fill.client_order_id)).first()
        if row is None:
            log.warning(
                "fill %s for unknown order %s kept as an orphan fill",
                fill.exchange_fill_id,
                fill.client_order_id,
            )
            return
        filled = row.filled_quantity + fill.quantity
        status = OrderStatus(row.status)
        if abs(filled) > abs(row.quantity) * (1 + _FILL_TOLERANCE):
            log.warning("order %s overfilled: %s of %s", fill.client_order_id, filled, row.quantity)
        if not status.is_final:
            done = abs(filled) >= abs(row.quantity) * (1 - _FILL_TOLERANCE)
            status = OrderStatus.FILLED if done else OrderStatus.PARTIALLY_FILLED
        conn.execute(
            update(t.orders)
            .where(t.orders.c.id == row.id)
            .values(filled_quantity=filled, status=status.value, updated_at=utc_now())
        )

    def _order_row(self, conn: Connection, client_order_id: str) -> Row[Any]:
        row = conn.execute(select(t.orders).where(t.orders.c.client_order_id == client_order_id)).first()
        if row is None:
            raise JournalConflict(f"order {client_order_id} is not in the journal")
        return row


def _bar_values(bar: BarRecord) -> dict[str, Any]:
    return {
        "instrument": bar.instrument,
        "bar_time": bar.bar_time,
        "open": bar.open,
        "high": bar.high,
        "low": bar.low,
        "close": bar.close,
        "volume": bar.volume,
    }
