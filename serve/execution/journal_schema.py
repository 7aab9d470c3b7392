"""Tables of the trading journal (SQLAlchemy Core), one per kind of record.

Idempotency keys are unique constraints, so the database itself refuses a
second order with the same client order id or a second copy of a fill:

* ``bars``: (instrument, bar_time); ``processed_at`` is set once the bar's
  decision and orders are journaled, which is how recovery finds the last
  processed bar per instrument;
* ``decisions``: decision_id;
* ``orders``: client_order_id; status and filled quantity are updated in place;
* ``fills``: (instrument, exchange_fill_id), since exchanges number trades per
  symbol; no foreign key to orders on purpose: a fill the exchange reports for
  an order the journal does not know (placed by hand, say) is still kept;
* ``positions`` and ``equity``: snapshots, append only;
* ``events``: everything else worth an audit trail (state changes, commands,
  alerts, recovery and reconciliation results).

All times are stored as naive UTC (``UtcDateTime`` refuses naive input and
returns aware UTC), so ordering by time is correct on every backend.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)

from serve.execution.records import require_utc

SCHEMA_VERSION = 1


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, naive UTC in the database."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return require_utc(value, "journal time").replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()

meta = Table(
    "journal_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

bars = Table(
    "bars",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("instrument", String(96), nullable=False),
    Column("bar_time", UtcDateTime, nullable=False),
    Column("open", Float, nullable=False),
    Column("high", Float, nullable=False),
    Column("low", Float, nullable=False),
    Column("close", Float, nullable=False),
    Column("volume", Float, nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
    Column("processed_at", UtcDateTime, nullable=True),
    UniqueConstraint("instrument", "bar_time", name="uq_bars_instrument_time"),
)

decisions = Table(
    "decisions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("decision_id", String(96), nullable=False, unique=True),
    Column("bar_time", UtcDateTime, nullable=False),
    Column("model", String(200), nullable=False, default=""),
    Column("payload", JSON, nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
)

orders = Table(
    "orders",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("client_order_id", String(64), nullable=False, unique=True),
    Column("decision_id", String(96), nullable=True),
    Column("instrument", String(96), nullable=False),
    Column("quantity", Float, nullable=False),
    Column("limit_price", Float, nullable=True),
    Column("status", String(24), nullable=False),
    Column("exchange_order_id", String(128), nullable=True),
    Column("filled_quantity", Float, nullable=False, default=0.0),
    Column("reason", Text, nullable=False, default=""),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ix_orders_status", "status"),
)

fills = Table(
    "fills",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("exchange_fill_id", String(128), nullable=False),
    Column("client_order_id", String(64), nullable=False),
    Column("instrument", String(96), nullable=False),
    Column("quantity", Float, nullable=False),
    Column("price", Float, nullable=False),
    Column("fee", Float, nullable=False),
    Column("filled_at", UtcDateTime, nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
    UniqueConstraint("instrument", "exchange_fill_id", name="uq_fills_instrument_fill"),
    Index("ix_fills_order", "client_order_id"),
)

positions = Table(
    "positions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("taken_at", UtcDateTime, nullable=False),
    Column("instrument", String(96), nullable=False),
    Column("quantity", Float, nullable=False),
    Column("average_price", Float, nullable=False),
    Column("mark_price", Float, nullable=False),
    Index("ix_positions_taken_at", "taken_at"),
)

equity = Table(
    "equity",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("taken_at", UtcDateTime, nullable=False),
    Column("equity", Float, nullable=False),
    Column("cash", Float, nullable=False),
    Index("ix_equity_taken_at", "taken_at"),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("time", UtcDateTime, nullable=False),
    Column("kind", String(64), nullable=False),
    Column("detail", JSON, nullable=False),
    Index("ix_events_kind_time", "kind", "time"),
)
