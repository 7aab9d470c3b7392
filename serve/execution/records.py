"""Records of live trading: what was seen, decided, ordered and filled.

They are shared by the risk manager, the journal, the notifier and the command
layer.  Every timestamp is timezone-aware UTC; quantities are signed units of
the instrument's base asset (positive buys), prices and fees are in the quote
currency.  Instruments are named ``exchange:SYMBOL`` as in
:attr:`features.data.schema.BarKey.instrument`.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from features.data.schema import DataError

CLIENT_ORDER_ID_LENGTH = 32  # fits Binance (36), Kraken (userref aside), Bitstamp and Coinbase limits


class OrderStatus(StrEnum):
    """Life of an order; the last four are final and never change again."""

    NEW = "new"  # journaled, not yet sent to the broker
    SUBMITTED = "submitted"  # sent, not yet acknowledged
    OPEN = "open"  # acknowledged by the broker and working
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES

    @property
    def rank(self) -> int:
        """Progress of the order: a status may only move to an equal or higher rank."""
        return _RANK.get(self, len(_RANK))


FINAL_STATUSES = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED}
)
_RANK = {OrderStatus.NEW: 0, OrderStatus.SUBMITTED: 1, OrderStatus.OPEN: 2, OrderStatus.PARTIALLY_FILLED: 3}


def utc_now() -> datetime:
    return datetime.now(UTC)


def require_utc(value: datetime, what: str) -> datetime:
    """Reject naive datetimes: a journal mixing local and UTC times cannot be recovered safely."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise DataError(f"{what} must be timezone-aware (UTC), got naive {value.isoformat()}")
    return value.astimezone(UTC)


def _finite(what: str, value: float) -> None:
    if not math.isfinite(value):
        raise DataError(f"{what} must be finite, got {value}")


def client_order_id(run_id: str, bar_time: datetime, instrument: str, leg: int = 0) -> str:
    """Deterministic client order id: the same decision always maps to the same id.

    After a crash the actor recomputes the id of an order it may already have
    sent; the journal and the exchange both refuse a second order with it.
    """
    stamp = require_utc(bar_time, "bar_time").isoformat()
    digest = hashlib.sha256(f"{run_id}|{stamp}|{instrument}|{leg}".encode()).hexdigest()
    return f"mft{digest[: CLIENT_ORDER_ID_LENGTH - 3]}"


@dataclass(frozen=True)
class BarRecord:
    """One closed bar as the actor saw it (``bar_time`` is the bar open time)."""

    instrument: str
    bar_time: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "bar_time", require_utc(self.bar_time, f"bar time of {self.instrument}"))


@dataclass(frozen=True)
class DecisionRecord:
    """What the model decided at the close of ``bar_time``; ``payload`` is JSON-serialisable."""

    decision_id: str
    bar_time: datetime
    payload: Mapping[str, Any] = field(default_factory=dict)
    model: str = ""  # model or ensemble version that decided

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "bar_time", require_utc(self.bar_time, f"bar time of decision {self.decision_id}")
        )


@dataclass(frozen=True)
class OrderIntent:
    """An order the actor wants to place, before the risk check.

    ``reference_price`` values the order (last close for a market order, the
    limit for a limit order); the risk limits are in quote currency at it.
    """

    instrument: str
    quantity: float
    reference_price: float
    limit_price: float | None = None
    client_order_id: str = ""

    def __post_init__(self) -> None:
        _finite(f"quantity of {self.instrument}", self.quantity)
        _finite(f"reference price of {self.instrument}", self.reference_price)

    @property
    def notional(self) -> float:
        return abs(self.quantity) * self.reference_price

    @property
    def side(self) -> str:
        return "buy" if self.quantity > 0 else "sell"


@dataclass(frozen=True)
class OrderRecord:
    """An order as journaled; ``client_order_id`` is its idempotency key."""

    client_order_id: str
    instrument: str
    quantity: float
    limit_price: float | None = None  # None: market order
    decision_id: str | None = None
    status: OrderStatus = OrderStatus.NEW
    exchange_order_id: str | None = None
    filled_quantity: float = 0.0  # signed, sum of the order's fills
    reason: str = ""  # why it was rejected, cancelled or expired
    created_at: datetime = field(default_factory=utc_now)
    updated_at: datetime | None = None
    # Bars a limit order rests before it expires (None: until cancelled).  Not a journal column:
    # the actor keeps it in the decision's payload and cancels expired orders itself.
    ttl_bars: int | None = None

    def __post_init__(self) -> None:
        if not self.client_order_id:
            raise DataError(f"order on {self.instrument} has an empty client_order_id")
        _finite(f"quantity of order {self.client_order_id}", self.quantity)
        if self.quantity == 0:
            raise DataError(f"order {self.client_order_id} has zero quantity")
        object.__setattr__(self, "status", OrderStatus(self.status))
        object.__setattr__(
            self, "created_at", require_utc(self.created_at, f"created_at of {self.client_order_id}")
        )

    @property
    def order_type(self) -> str:
        return "market" if self.limit_price is None else "limit"

    @property
    def side(self) -> str:
        return "buy" if self.quantity > 0 else "sell"

    @property
    def remaining(self) -> float:
        return self.quantity - self.filled_quantity


@dataclass(frozen=True)
class FillRecord:
    """One execution reported by the exchange; ``exchange_fill_id`` is its idempotency key."""

    exchange_fill_id: str
    client_order_id: str
    instrument: str
    quantity: float  # signed like the order
    price: float
    fee: float = 0.0  # in the quote currency
    filled_at: datetime = field(default_factory=utc_now)

    def __post_init__(self) -> None:
        if not self.exchange_fill_id:
            raise DataError(f"fill of order {self.client_order_id} has an empty exchange_fill_id")
        for name in ("quantity", "price", "fee"):
            _finite(f"{name} of fill {self.exchange_fill_id}", getattr(self, name))
        if self.price <= 0 or self.quantity == 0:
            raise DataError(f"fill {self.exchange_fill_id}: price must be > 0 and quantity non-zero")
        object.__setattr__(
            self, "filled_at", require_utc(self.filled_at, f"filled_at of {self.exchange_fill_id}")
        )

    @property
    def notional(self) -> float:
        return abs(self.quantity) * self.price


@dataclass(frozen=True)
class PositionSnapshot:
    """A position at a moment: units held, average entry price and the mark it was valued at."""

    instrument: str
    quantity: float
    average_price: float = 0.0
    mark_price: float = 0.0

    @property
    def market_value(self) -> float:
        return self.quantity * self.mark_price

    @property
    def unrealized_pnl(self) -> float:
        return self.quantity * (self.mark_price - self.average_price)


@dataclass(frozen=True)
class PortfolioState:
    """What the risk manager needs to judge an order: equity, positions and prices now."""

    time: datetime
    equity: float
    positions: Mapping[str, float] = field(default_factory=dict)  # units per instrument
    prices: Mapping[str, float] = field(default_factory=dict)  # last price per instrument

    def __post_init__(self) -> None:
        object.__setattr__(self, "time", require_utc(self.time, "portfolio time"))
        _finite("equity", self.equity)

    def position(self, instrument: str) -> float:
        return float(self.positions.get(instrument, 0.0))
