"""Positions rebuilt from fills, and reconciliation against what the broker reports.

Fills are the ground truth of what was traded: replaying them in time order
gives each instrument's position, average entry price, realised PnL and fees.
After a restart the actor compares this book with the broker's balances and
open orders; :func:`reconcile` lists every disagreement so nothing is silently
assumed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from serve.execution.records import FillRecord, OrderRecord

QUANTITY_TOLERANCE = 1e-9


@dataclass
class BookPosition:
    """Net position of one instrument from its fills (average-cost accounting)."""

    instrument: str
    quantity: float = 0.0
    average_price: float = 0.0
    realized_pnl: float = 0.0  # before fees
    fees: float = 0.0
    fills: int = 0

    def apply(self, quantity: float, price: float, fee: float) -> None:
        """Book one fill: grow at a blended average, shrink realising PnL, cross resetting the average."""
        held = self.quantity
        if held == 0 or held * quantity > 0:
            total = abs(held) + abs(quantity)
            self.average_price = (self.average_price * abs(held) + price * abs(quantity)) / total
        else:
            closed = min(abs(quantity), abs(held))
            direction = 1.0 if held > 0 else -1.0
            self.realized_pnl += closed * (price - self.average_price) * direction
            if abs(quantity) > abs(held):
                self.average_price = price
        self.quantity = held + quantity
        if abs(self.quantity) <= QUANTITY_TOLERANCE * max(1.0, abs(held)):
            self.quantity, self.average_price = 0.0, 0.0
        self.fees += fee
        self.fills += 1


def positions_from_fills(fills: Iterable[FillRecord]) -> dict[str, BookPosition]:
    """Replay fills (already in time order) into a book keyed by instrument."""
    book: dict[str, BookPosition] = {}
    for fill in fills:
        book.setdefault(fill.instrument, BookPosition(fill.instrument)).apply(
            fill.quantity, fill.price, fill.fee
        )
    return book


@dataclass(frozen=True)
class Discrepancy:
    """One disagreement between the journal and the broker."""

    kind: str  # position, unknown_open_order, missing_open_order
    subject: str  # instrument or client order id
    journal: float | str | None
    broker: float | str | None

    def __str__(self) -> str:
        return f"{self.kind} {self.subject}: journal {self.journal!r}, broker {self.broker!r}"


def reconcile(
    journal_positions: Mapping[str, float],
    broker_positions: Mapping[str, float],
    journal_open: Iterable[OrderRecord],
    broker_open_ids: Iterable[str],
    tolerance: float = 1e-8,
) -> list[Discrepancy]:
    """Positions that differ by more than ``tolerance`` units, and open orders only one side knows.

    A journaled order that is open on our side but unknown to the broker was
    either never sent (crash between journal write and send) or has ended
    unreported: the actor must ask the broker for it by client order id
    before re-sending anything.
    """
    found: list[Discrepancy] = []
    for instrument in sorted(set(journal_positions) | set(broker_positions)):
        ours, theirs = journal_positions.get(instrument, 0.0), broker_positions.get(instrument, 0.0)
        if abs(ours - theirs) > tolerance:
            found.append(Discrepancy("position", instrument, ours, theirs))
    open_ids = {order.client_order_id for order in journal_open}
    broker_ids = set(broker_open_ids)
    found.extend(
        Discrepancy("missing_open_order", cid, "open", None) for cid in sorted(open_ids - broker_ids)
    )
    found.extend(
        Discrepancy("unknown_open_order", cid, None, "open") for cid in sorted(broker_ids - open_ids)
    )
    return found
