"""The broker seam of the execution actor: one small interface, a paper and an exchange implementation.

The actor journals an order *before* it calls :meth:`ExecutionBroker.submit`, and records every
fill the broker reports.  Everything the actor needs from a venue goes through these methods, so
the trading loop never knows whether it is paper or live:

* ``submit`` places an order under its deterministic client order id and returns the order's state
  (``OPEN``, ``FILLED``, ``REJECTED``...).  Submitting an id the venue already knows must not place a
  second order: it returns the state of the existing one (this is what makes a retry after a crash
  safe).
* ``on_bar`` is called once per closed bar, before the decision: the paper broker matches its
  working orders against the bar; an exchange broker polls the state of its open orders.  Both
  return the fills and order updates that happened since the last call.
* ``order_state`` and ``open_orders`` answer reconciliation questions after a restart.
* ``account`` is the cash and units the venue holds for us.

Venue differences (fees, minimum sizes, symbol formats) are data in each implementation's config,
not branches in the actor.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from serve.execution.records import BarRecord, FillRecord, OrderRecord, OrderStatus


@dataclass(frozen=True)
class OrderUpdate:
    """The venue's view of one order: its status, what filled so far, and why it ended if it did."""

    client_order_id: str
    status: OrderStatus
    filled_quantity: float = 0.0  # signed like the order
    exchange_order_id: str | None = None
    reason: str = ""


@dataclass(frozen=True)
class BrokerEvents:
    """What happened at the venue since the last call: fills first, then order state changes."""

    fills: Sequence[FillRecord] = ()
    updates: Sequence[OrderUpdate] = ()

    def __bool__(self) -> bool:
        return bool(self.fills or self.updates)


@dataclass(frozen=True)
class Account:
    """Cash (quote currency) and signed units per instrument ('exchange:SYMBOL') at the venue."""

    cash: float
    units: Mapping[str, float] = field(default_factory=dict)


class BrokerError(RuntimeError):
    """The venue could not be reached or answered nonsense; the order's state is unknown, retry later."""


class ExecutionBroker(ABC):
    """Places orders and reports fills for one account; ``paper`` or ``live``."""

    mode: str = "paper"

    def submit(self, order: OrderRecord, bar: BarRecord | None = None) -> OrderUpdate:
        """Place ``order`` (already journaled); idempotent by its client order id.

        ``bar`` is the decision bar of the order's instrument: the paper broker sizes its checks
        with its close; an exchange ignores it.
        """
        if not order.client_order_id:
            raise ValueError("an order needs a client order id before it reaches a broker")
        return self._submit(order, bar)

    def on_bar(self, bars: Mapping[str, BarRecord]) -> BrokerEvents:
        """The bars that just closed (by instrument); returns fills and order updates since the last call."""
        return self._on_bar(bars)

    @abstractmethod
    def _submit(self, order: OrderRecord, bar: BarRecord | None) -> OrderUpdate: ...

    @abstractmethod
    def _on_bar(self, bars: Mapping[str, BarRecord]) -> BrokerEvents: ...

    @abstractmethod
    def cancel(self, client_order_id: str) -> OrderUpdate:
        """Cancel a working order; cancelling a final order returns its final state."""

    @abstractmethod
    def order_state(self, client_order_id: str) -> OrderUpdate | None:
        """The venue's state of an order, or None when it never received it."""

    @abstractmethod
    def open_orders(self) -> Sequence[OrderUpdate]:
        """Orders working at the venue (placed by us)."""

    @abstractmethod
    def account(self) -> Account:
        """Cash and units the venue holds for us."""

    def close(self) -> None:  # noqa: B027 - optional hook: most brokers hold nothing to release
        """Release connections."""
