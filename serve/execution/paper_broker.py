"""The paper broker: fills exactly like the training environment, and survives a crash of the actor.

It runs the environment's own :class:`envs.broker.Broker` and :class:`envs.portfolio.Portfolio` over a
:class:`~serve.execution.market_window.BarWindow`, so an order decided at the close of bar ``t``
fills on bar ``t + 1`` at the open plus slippage and impact (market) or when the bar's range
reaches the limit (limit), pays the same fees, is cut to the cash or margin available and is
rejected below the venue minimum - the rules of docs/envs.md, not a second implementation.

Like an exchange it lives apart from the actor's memory: after every bar and every order its
state (bars, cash, units, working orders, the outcome of each client order id) is written to a
JSON snapshot by write-then-rename, so a restarted actor finds the orders it placed before the
crash.  Submitting a known client order id returns that order's state instead of placing it
again, and calling :meth:`on_bar` again with the bar it last processed returns that bar's events
again: the journal books them once because it is idempotent by fill id.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from envs.broker import Broker
from envs.config import EnvConfig
from envs.ledger import Ledger
from envs.portfolio import Portfolio
from envs.records import CANCELLED, EXPIRED, FILLED, PENDING, REJECTED, Order, StepResult
from envs.sizing import make_sizing_rule
from features.data.schema import BarKey, DataError
from features.panel import FeaturePanel
from serve.execution.brokers import Account, BrokerEvents, ExecutionBroker, OrderUpdate
from serve.execution.market_window import DEFAULT_CAPACITY, BarWindow, as_datetime64
from serve.execution.records import BarRecord, FillRecord, OrderRecord, OrderStatus

_STATUS = {PENDING: OrderStatus.OPEN, FILLED: OrderStatus.FILLED, EXPIRED: OrderStatus.EXPIRED,
           REJECTED: OrderStatus.REJECTED, CANCELLED: OrderStatus.CANCELLED}
FOREVER = 10**12  # ttl of an order that rests until cancelled


def bar_row(bars: Mapping[str, BarRecord], instruments: Sequence[str]) -> tuple[datetime, np.ndarray]:
    """The aligned [N, 5] row of one bar time; every instrument must be there, at the same time."""
    missing = [name for name in instruments if name not in bars]
    if missing:
        raise DataError(f"no bar for {', '.join(missing)}; a bar row needs every instrument ({', '.join(instruments)})")
    times = {bars[name].bar_time for name in instruments}
    if len(times) != 1:
        raise DataError(f"bars of one row have different times: {sorted(t.isoformat() for t in times)}")
    row = np.array([[b.open, b.high, b.low, b.close, b.volume] for b in (bars[n] for n in instruments)])
    return times.pop(), row


class PaperBroker(ExecutionBroker):
    """A simulated venue holding one account; ``state_path`` makes it durable."""

    mode = "paper"

    def __init__(self, keys: Sequence[BarKey], env_config: EnvConfig, *, history: np.ndarray | None = None,
                 times: Sequence[np.datetime64] | np.ndarray = (), initial_cash: float | None = None,
                 state_path: str | Path | None = None, capacity: int = DEFAULT_CAPACITY) -> None:
        self.keys = tuple(keys)
        self.instruments = tuple(k.instrument for k in self.keys)
        self._index = {name: i for i, name in enumerate(self.instruments)}
        sizing = make_sizing_rule(env_config.sizing.name, dict(env_config.sizing.params))
        self.window = BarWindow(self.keys, env_config.costs, sizing, history, times, capacity)
        cash = env_config.initial_cash if initial_cash is None else float(initial_cash)
        self.portfolio = Portfolio(len(self.keys), cash, bar=max(self.window.last_index, 0))
        self.broker = Broker(env_config.costs, env_config.allow_short, env_config.max_leverage)
        self.ledger = Ledger(_stub_panel(self.keys))
        self.broker.pending = []
        self.broker.ledger, self.broker.portfolio = self.ledger, self.portfolio
        self._client_ids: dict[int, str] = {}  # envs order id -> client order id
        self._orders: dict[str, Order] = {}
        self._last_events = BrokerEvents()
        self.state_path = Path(state_path) if state_path else None
        if self.state_path is not None and self.state_path.exists():
            self._load()

    # -- the venue ------------------------------------------------------------------------------

    def _attach(self) -> int:
        """Point the environment's broker at the current market; the newest bar's row."""
        market = self.window.market
        self.broker.market, self.broker.offset = market, market.offset
        return self.window.local(self.window.last_index)

    def _submit(self, order: OrderRecord, bar: BarRecord | None) -> OrderUpdate:
        known = self._orders.get(order.client_order_id)
        if known is not None:
            return self._update(order.client_order_id, known)
        if order.instrument not in self._index:
            return OrderUpdate(order.client_order_id, OrderStatus.REJECTED,
                               reason=f"unknown instrument {order.instrument}")
        if self.window.last_index < 0:
            return OrderUpdate(order.client_order_id, OrderStatus.REJECTED, reason="no market data yet")
        row = self._attach()
        ttl = FOREVER if order.ttl_bars is None else int(order.ttl_bars)
        placed = len(self.ledger.orders)
        self.broker.submit([(self._index[order.instrument], order.quantity, order.limit_price, ttl)], row,
                           StepResult())
        if len(self.ledger.orders) == placed:  # dropped before placing, as the environment does
            minimum = self.window.market.min_notional[self._index[order.instrument]]
            update = OrderUpdate(order.client_order_id, OrderStatus.REJECTED,
                                 reason=f"notional below the venue minimum {minimum:g}")
            self._save()
            return update
        placed_order = self.ledger.orders[-1]
        self._client_ids[placed_order.order_id] = order.client_order_id
        self._orders[order.client_order_id] = placed_order
        self._save()
        return self._update(order.client_order_id, placed_order)

    def _on_bar(self, bars: Mapping[str, BarRecord]) -> BrokerEvents:
        time, row = bar_row(bars, self.instruments)
        stamp = as_datetime64(time)
        last = self.window.last_time
        if last is not None and stamp <= last:
            # The actor re-delivers the bar it crashed on: report that bar's events again.
            return self._last_events if stamp == last else BrokerEvents()
        before = list(self.broker.pending)
        working = self.broker.pending
        self.window.append(time, row)
        local = self._attach()
        if working:
            self.broker.execute(local, StepResult())
        # execute() sorted the working list in place into booking order: fills are reported in that order.
        fills = [self._fill(order, time) for order in working if order.status == FILLED]
        updates = [self._update(self._client_ids[o.order_id], o) for o in before if o.status != PENDING]
        self.portfolio.mark(self.window.close())
        self._last_events = BrokerEvents(fills, updates)
        self._save()
        return self._last_events

    def _fill(self, order: Order, time: datetime) -> FillRecord:
        client_id = self._client_ids[order.order_id]
        return FillRecord(f"paper-{client_id}", client_id, self.instruments[order.instrument],
                          order.filled_quantity, order.fill_price, order.fee, time.astimezone(UTC))

    def _update(self, client_id: str, order: Order) -> OrderUpdate:
        status = _STATUS[order.status]
        return OrderUpdate(client_id, status, order.filled_quantity if order.status == FILLED else 0.0,
                           f"paper-{order.order_id}", order.reason)

    def cancel(self, client_order_id: str) -> OrderUpdate:
        order = self._orders.get(client_order_id)
        if order is None:
            return OrderUpdate(client_order_id, OrderStatus.REJECTED, reason="unknown order")
        if order.status == PENDING:
            order.status, order.reason = CANCELLED, "cancelled by the trader"
            self.broker.pending = [o for o in self.broker.pending if o is not order]
            self._save()
        return self._update(client_order_id, order)

    def order_state(self, client_order_id: str) -> OrderUpdate | None:
        order = self._orders.get(client_order_id)
        return None if order is None else self._update(client_order_id, order)

    def open_orders(self) -> Sequence[OrderUpdate]:
        return [self._update(self._client_ids[o.order_id], o) for o in self.broker.pending]

    def account(self) -> Account:
        return Account(self.portfolio.cash, dict(zip(self.instruments, self.portfolio.units, strict=True)))

    # -- durability -----------------------------------------------------------------------------

    def _save(self) -> None:
        if self.state_path is None:
            return
        p = self.portfolio
        state = {
            "window": self.window.state(),
            "portfolio": {"cash": p.cash, "units": p.units, "entry": p.entry, "net_worth": p.net_worth,
                          "start_bar": p.start_bar, "last_trade_bar": p.last_trade_bar},
            "orders": [_order_state(o, self._client_ids[o.order_id]) for o in self._orders.values()],
            "pending": [o.order_id for o in self.broker.pending],
            "next_id": len(self.ledger.orders),
            "last_events": _events_state(self._last_events),
        }
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        scratch = self.state_path.with_suffix(".tmp")
        with open(scratch, "w") as handle:
            json.dump(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(scratch, self.state_path)

    def _load(self) -> None:
        assert self.state_path is not None
        try:
            state = json.loads(self.state_path.read_text())
            self.window.restore(state["window"])
            for name, value in state["portfolio"].items():
                setattr(self.portfolio, name, value)
            by_id: dict[int, Order] = {}
            for saved in state["orders"]:
                order = _order_from(saved)
                by_id[order.order_id] = order
                self._orders[saved["client_order_id"]] = order
                self._client_ids[order.order_id] = saved["client_order_id"]
            self.ledger.orders = [by_id.get(i) or _placeholder(i) for i in range(int(state["next_id"]))]
            self.broker.pending = [by_id[i] for i in state["pending"]]
            self._last_events = _events_from(state["last_events"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise DataError(f"{self.state_path}: the paper broker's state cannot be read ({err}); "
                            "move it away to start a fresh paper account") from err
        self.portfolio.single = len(self.portfolio.units) == 1


def _stub_panel(keys: Sequence[BarKey]) -> FeaturePanel:
    """The paper ledger never builds frames; it needs a panel only for its instrument names."""
    n = len(keys)
    return FeaturePanel(np.zeros(1, "datetime64[us]"), tuple(keys), (), np.zeros((1, n, 0), np.float32),
                        np.ones((1, n, 5)))


_ORDER_FIELDS = ("status", "reason", "fill_bar", "filled_quantity", "fill_price", "fee", "slippage", "impact",
                 "realized_pnl")


def _order_state(order: Order, client_id: str) -> dict[str, Any]:
    return {"client_order_id": client_id, "order_id": order.order_id, "decision_bar": order.decision_bar,
            "instrument": order.instrument, "quantity": order.quantity, "limit_price": order.limit_price,
            "expiry_bar": order.expiry_bar, **{name: getattr(order, name) for name in _ORDER_FIELDS}}


def _order_from(saved: Mapping[str, Any]) -> Order:
    order = Order(saved["order_id"], saved["decision_bar"], saved["instrument"], saved["quantity"],
                  saved["limit_price"], saved["expiry_bar"])
    for name in _ORDER_FIELDS:
        setattr(order, name, saved[name])
    return order


def _placeholder(order_id: int) -> Order:
    order = Order(order_id, 0, 0, 0.0, None, 0)
    order.status = CANCELLED
    return order


def _events_state(events: BrokerEvents) -> dict[str, Any]:
    return {
        "fills": [[f.exchange_fill_id, f.client_order_id, f.instrument, f.quantity, f.price, f.fee,
                   f.filled_at.isoformat()] for f in events.fills],
        "updates": [[u.client_order_id, u.status.value, u.filled_quantity, u.exchange_order_id, u.reason]
                    for u in events.updates],
    }


def _events_from(state: Mapping[str, Any]) -> BrokerEvents:
    fills = [FillRecord(a, b, c, d, e, f, datetime.fromisoformat(g)) for a, b, c, d, e, f, g in state["fills"]]
    updates = [OrderUpdate(a, OrderStatus(b), c, d, e) for a, b, c, d, e in state["updates"]]
    return BrokerEvents(fills, updates)
