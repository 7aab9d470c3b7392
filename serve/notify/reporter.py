"""Operator messages for everything the running ensemble does, plus the daily summary.

The execution actor calls :class:`ActivityReporter` as it journals: decisions,
orders and fills go out at LOW priority (batched, first to be dropped if the
queue overflows), alerts and kill-switch changes at HIGH (sent at once), and
once a day, at ``summary_hour_utc``, a summary of the previous UTC day built
from the journal.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from serve.execution.journal import Journal
from serve.execution.records import DecisionRecord, FillRecord, OrderRecord, OrderStatus, require_utc
from serve.execution.risk import StateChange
from serve.monitoring.alerts import Alert
from serve.notify.message import Message, Notifier, Priority

_PAYLOAD_CHARS = 300


@dataclass(frozen=True)
class DailySummary:
    day: date
    start_equity: float | None
    end_equity: float | None
    orders: int
    fills: int
    rejected: int
    fees: float
    volume: float  # traded notional, quote currency

    @property
    def pnl(self) -> float | None:
        if self.start_equity is None or self.end_equity is None:
            return None
        return self.end_equity - self.start_equity

    def text(self) -> str:
        pnl = "n/a" if self.pnl is None else f"{self.pnl:+,.2f}"
        equity = "n/a" if self.end_equity is None else f"{self.end_equity:,.2f}"
        return (
            f"Daily summary {self.day:%Y-%m-%d} (UTC): PnL {pnl}, equity {equity}, {self.orders} orders "
            f"({self.rejected} rejected), {self.fills} fills, volume {self.volume:,.2f}, "
            f"fees {self.fees:,.2f}"
        )


def daily_summary(journal: Journal, day: date) -> DailySummary:
    """The day's activity from the journal: equity at its first and last snapshot, orders, fills, fees."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    end = start + timedelta(days=1)
    curve = [(t, e) for t, e in journal.equity_curve(start) if t < end]
    orders = [o for o in journal.orders(start) if o.created_at < end]
    fills = [f for f in journal.fills(since=start) if f.filled_at < end]
    return DailySummary(
        day=day,
        start_equity=curve[0][1] if curve else None,
        end_equity=curve[-1][1] if curve else None,
        orders=len(orders),
        fills=len(fills),
        rejected=sum(o.status is OrderStatus.REJECTED for o in orders),
        fees=sum(f.fee for f in fills),
        volume=sum(f.notional for f in fills),
    )


class ActivityReporter:
    """Formats trading activity into messages for a :class:`Notifier`."""

    def __init__(self, notifier: Notifier, summary_hour_utc: int = 0) -> None:
        self.notifier = notifier
        self.summary_hour_utc = summary_hour_utc
        self._summarised_until: date | None = None

    def decision(self, decision: DecisionRecord) -> None:
        payload = json.dumps(dict(decision.payload), separators=(",", ":"), default=str)
        if len(payload) > _PAYLOAD_CHARS:
            payload = payload[: _PAYLOAD_CHARS - 1] + "…"
        model = f" [{decision.model}]" if decision.model else ""
        self._send(f"decision {decision.bar_time:%Y-%m-%d %H:%M}{model}: {payload}", Priority.LOW, "decision")

    def order(self, order: OrderRecord) -> None:
        price = "market" if order.limit_price is None else f"limit {order.limit_price:,.2f}"
        reason = f" ({order.reason})" if order.reason else ""
        priority = Priority.NORMAL if order.status is OrderStatus.REJECTED else Priority.LOW
        self._send(
            f"order {order.status.value}: {order.side} {abs(order.quantity):g} {order.instrument} "
            f"{price}{reason} [{order.client_order_id}]",
            priority,
            "order",
        )

    def fill(self, fill: FillRecord) -> None:
        side = "bought" if fill.quantity > 0 else "sold"
        self._send(
            f"fill: {side} {abs(fill.quantity):g} {fill.instrument} @ {fill.price:,.2f}, "
            f"fee {fill.fee:,.4f} [{fill.client_order_id}]",
            Priority.LOW,
            "fill",
        )

    def alert(self, alert: Alert) -> None:
        self._send(alert.text(), Priority.HIGH, "alert")

    def state_change(self, change: StateChange) -> None:
        self._send(
            f"trading state: {change.previous.value} -> {change.current.value} ({change.reason})",
            Priority.HIGH,
            "state",
        )

    def maybe_daily_summary(
        self, now: datetime, summarise: Callable[[date], DailySummary]
    ) -> DailySummary | None:
        """Send the previous UTC day's summary once ``summary_hour_utc`` has passed; call on every bar.

        The first call only notes the current day, so a restart does not repeat a summary already sent.
        """
        now = require_utc(now, "now")
        due = now.date() - timedelta(days=1 if now.hour >= self.summary_hour_utc else 2)
        if self._summarised_until is None:
            self._summarised_until = due
            return None
        if due <= self._summarised_until:
            return None
        self._summarised_until = due
        summary = summarise(due)
        self._send(summary.text(), Priority.NORMAL, "summary")
        return summary

    def _send(self, text: str, priority: Priority, kind: str) -> None:
        self.notifier.send(Message(text, priority, kind))
