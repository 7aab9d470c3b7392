"""The trading loop of one account: one closed bar in, journaled decisions, orders and fills out.

One cycle per closed bar row (:meth:`Trader.process`), in this order:

1. journal the bars;
2. ask the broker what happened since the last bar (the paper broker fills the orders decided at
   the previous close on this bar), journal the fills and order updates, book new fills;
3. mark the account at the close, journal positions and equity, update risk and performance;
4. update the features and build the observation exactly as the environment does
   (``market window + portfolio state``);
5. ask the decider (the policy service) for an action, journal the decision *before* acting;
6. turn the action into orders with the run's action scheme and sizing (the environment's code),
   drop those below the venue minimum as the environment does, check each against the risk
   limits, journal it, then send it under its deterministic client order id;
7. mark the bars processed.

Every write precedes the action it records, and every step is idempotent, so a crash anywhere
in the cycle is repaired by running the same bar again: the journal refuses duplicates, the
decision is reused, and brokers answer a known client order id with that order's state.
"""

from __future__ import annotations

import logging
import time as clock
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from envs.actions import make_action_scheme
from envs.market import MarketRow
from envs.portfolio import Portfolio
from envs.records import OrderRequest, market_order
from envs.sizing import make_sizing_rule
from features.data.schema import parse_timeframe
from serve.execution.brokers import BrokerEvents, ExecutionBroker, OrderUpdate
from serve.execution.deciders import Decider
from serve.execution.journal import Journal
from serve.execution.live_features import LiveFeatures
from serve.execution.market_window import BarWindow
from serve.execution.paper_broker import bar_row
from serve.execution.records import (
    BarRecord,
    DecisionRecord,
    FillRecord,
    OrderIntent,
    OrderRecord,
    OrderStatus,
    PortfolioState,
    PositionSnapshot,
    client_order_id,
)
from serve.execution.risk import RiskManager, TradingState
from serve.execution.spec import TradingSpec
from serve.execution.trader_hooks import TraderHooks

log = logging.getLogger(__name__)


@dataclass
class CycleResult:
    """What one bar did (for logs, tests and the replay summary)."""

    time: datetime
    equity: float
    decided: bool = False
    action: Any = None
    orders: list[OrderRecord] = field(default_factory=list)
    fills: list[FillRecord] = field(default_factory=list)
    skipped: str = ""  # why the bar was not decided on


class Trader:
    """Runs :meth:`process` for each closed bar row; recovers its state from the journal on creation."""

    def __init__(self, spec: TradingSpec, *, broker: ExecutionBroker, decider: Decider, journal: Journal,
                 risk: RiskManager, features: LiveFeatures, window: BarWindow, run_id: str, stream_id: str,
                 initial_cash: float, hooks: TraderHooks | None = None) -> None:
        self.spec, self.broker, self.decider, self.journal, self.risk = spec, broker, decider, journal, risk
        self.features, self.window, self.run_id, self.stream_id = features, window, run_id, stream_id
        self.hooks = hooks or TraderHooks()
        config = spec.env_config
        self.scheme = make_action_scheme(config.action.name, config.action.params, allow_short=config.allow_short,
                                         max_leverage=config.max_leverage)
        self.sizing = make_sizing_rule(config.sizing.name, dict(config.sizing.params))
        self.instruments = spec.instruments
        self.action_space = self.scheme.space(len(self.instruments))  # also sizes the scheme, as the env does
        self.index = {name: i for i, name in enumerate(self.instruments)}
        self.min_notional = [config.costs.min_notional_for(k.exchange) for k in spec.keys]
        self.initial_cash = float(initial_cash)
        # The first bar processed is the episode's start: "bars since the last trade" counts from it, as in the env.
        self.book = Portfolio(len(self.instruments), self.initial_cash, bar=window.last_index + 1)
        self.expiry: dict[str, int] = {}  # client order id -> bar index at which a resting order ends
        self.last_time: datetime | None = None
        self.bars_processed = 0  # in this journal, across restarts (set by recovery)
        self.last_snapshot: datetime | None = None  # time of the last journaled equity snapshot
        self.live = False  # bars arrive as they close (set by the session from its source)

    # -- the cycle ------------------------------------------------------------------------------

    def process(self, bars: Mapping[str, BarRecord], *, final: bool = False) -> CycleResult:
        """One closed bar of every instrument; ``final``: no later bar will come (no new orders)."""
        started = clock.perf_counter()
        time, row = bar_row(bars, self.instruments)
        for bar in bars.values():
            self.journal.record_bar(bar)
        self.hooks.checkpoint(self, "bar_seen")
        fills = self._settle(self.broker.on_bar(bars), time)
        self.hooks.checkpoint(self, "fills_booked")
        index = self.window.append(time, row)
        market = self.features.update(bars)
        close = self.window.close()
        equity = self.book.mark(close)
        self._snapshot(time, close, equity)
        self.hooks.bar(self, time, equity)
        result = CycleResult(time, equity, fills=fills)
        result.skipped = self._skip_reason(market, final)
        if not result.skipped:
            assert market is not None
            self._decide_and_order(result, market, index, close)
        for bar in bars.values():
            self.journal.mark_bar_processed(bar.instrument, bar.bar_time)
        self.last_time = time
        self.bars_processed += 1
        if result.orders:
            self.hooks.loop_latency(self._latency(time, started))
        return result

    def _latency(self, time: datetime, started: float) -> float:
        """Seconds from the bar's close (live bars) or from the start of the cycle (replays) to orders sent."""
        if not self.live:
            return clock.perf_counter() - started
        closed = time + parse_timeframe(self.spec.timeframe)
        return (datetime.now(UTC) - closed).total_seconds()

    def _skip_reason(self, market: np.ndarray | None, final: bool) -> str:
        if final:
            return "last bar of the replay: an order could never fill"
        if market is None:
            return "features still warming up"
        if self.risk.switch.state in (TradingState.PAUSED, TradingState.FROZEN):
            return f"trading is {self.risk.switch.state.value}"
        return ""

    def _settle(self, events: BrokerEvents, time: datetime) -> list[FillRecord]:
        """Journal the broker's fills and order updates; book each new fill once."""
        booked = []
        for fill in events.fills:
            if self.journal.record_fill(fill):
                bar = self.window.last_index + 1  # fills belong to the bar being processed
                self.book.apply_fill(self.index[fill.instrument], fill.quantity, fill.price, fill.fee, bar)
                booked.append(fill)
                self.hooks.fill(self, fill)
        for update in events.updates:
            self.apply_update(update)
        self._expire(time)
        return booked

    def apply_update(self, update: OrderUpdate) -> None:
        known = self.journal.order(update.client_order_id)
        if known is None or known.status.is_final or update.status.rank < known.status.rank:
            return
        if update.status == known.status and not update.reason:
            return
        if update.status is OrderStatus.FILLED and abs(known.filled_quantity - known.quantity) > 1e-12 * max(
                1.0, abs(known.quantity)):
            update = OrderUpdate(update.client_order_id, OrderStatus.FILLED, known.filled_quantity,
                                 update.exchange_order_id, update.reason or "filled in part, rest cut to cash")
        self.journal.update_order(update.client_order_id, update.status, exchange_order_id=update.exchange_order_id,
                                  reason=update.reason)
        if update.status.is_final:
            self.expiry.pop(update.client_order_id, None)
            self.hooks.order_final(self, known, update)

    def _expire(self, time: datetime) -> None:
        """End resting orders whose time is up, as the environment does: an order decided at bar d with a
        time to live of n bars may fill up to bar d + n and ends there.  The paper broker expires its own
        (cancelling them is then a no-op); an exchange keeps them until cancelled."""
        bar = self.window.last_index + 1  # the bar whose events were just settled
        for client_id, ends in list(self.expiry.items()):
            if ends <= bar:
                update = self.broker.cancel(client_id)
                if update.status is OrderStatus.CANCELLED:
                    update = OrderUpdate(client_id, OrderStatus.EXPIRED, update.filled_quantity,
                                         update.exchange_order_id, "limit price not reached within its time to live")
                self.apply_update(update)
                self.expiry.pop(client_id, None)

    def _snapshot(self, time: datetime, close: list[float], equity: float) -> None:
        if self.last_snapshot is None or time > self.last_snapshot:  # a re-processed bar has its snapshot
            snapshot = [PositionSnapshot(name, units, entry, price) for name, units, entry, price in
                        zip(self.instruments, self.book.units, self.book.entry, close, strict=True)]
            self.journal.record_positions(time, snapshot, equity, self.book.cash)
            self.last_snapshot = time
        change = self.risk.observe(self.portfolio_state(time, close))
        if change is not None:
            self.journal.record_event("trading_state", {"state": change.current.value, "reason": change.reason}, time)
            self.hooks.state_change(self, change)

    def portfolio_state(self, time: datetime, close: list[float]) -> PortfolioState:
        return PortfolioState(time, self.book.net_worth, dict(zip(self.instruments, self.book.units, strict=True)),
                              dict(zip(self.instruments, close, strict=True)))

    # -- deciding and ordering ------------------------------------------------------------------

    def decision_id(self, time: datetime) -> str:
        return f"{self.run_id}:{self.stream_id}:{time.isoformat()}"

    def observation(self, market: np.ndarray, index: int, close: list[float]) -> np.ndarray:
        portfolio = self.book.state(close, index, self.spec.env_config.window)
        return np.concatenate([market, np.asarray(portfolio, dtype=np.float32)])

    def _decide_and_order(self, result: CycleResult, market: np.ndarray, index: int, close: list[float]) -> None:
        time = result.time
        decision_id = self.decision_id(time)
        known = self.journal.decision(decision_id)
        requests: list[OrderRequest]
        if self.risk.switch.state is TradingState.FLATTENING:
            action, requests = None, [market_order(i, -units) for i, units in enumerate(self.book.units) if units]
        else:
            if known is not None:  # decided before a crash: act on that decision, do not ask again
                action = known.payload["action"]
            else:
                decision = self.decider.decide(self.stream_id, self.observation(market, index, close))
                action = decision.action
                record = DecisionRecord(decision_id, time, {"action": action, "bar_index": index,
                                                            "service": decision.payload}, decision.model)
                self.journal.record_decision(record)
                self.hooks.checkpoint(self, "decided")
                self.hooks.decision(self, record)
            row = MarketRow(self.min_notional)
            row.bar, row.close, row.scale = index, close, self.window.scale()
            requests = self.scheme.to_orders(action, self.book, row)
        result.decided, result.action = True, action
        for leg, (instrument, quantity, limit_price, ttl) in enumerate(requests):
            if abs(quantity) * close[instrument] < self.min_notional[instrument] or quantity == 0:
                continue  # the environment drops these without placing them
            order = self._place(time, decision_id, leg, instrument, quantity, limit_price, ttl, close)
            if order is not None:
                result.orders.append(order)

    def _place(self, time: datetime, decision_id: str, leg: int, instrument: int, quantity: float,
               limit_price: float | None, ttl: int, close: list[float]) -> OrderRecord | None:
        name = self.instruments[instrument]
        client_id = client_order_id(self.run_id, time, name, leg)
        journaled = self.journal.order(client_id)
        if journaled is not None and journaled.status not in (OrderStatus.NEW, OrderStatus.SUBMITTED):
            return journaled  # placed before a crash
        verdict = self.risk.check(OrderIntent(name, quantity, close[instrument], limit_price, client_id),
                                  self.portfolio_state(time, close))
        resting = None if limit_price is None else int(ttl)
        order = OrderRecord(client_id, name, quantity, limit_price, decision_id, created_at=time, ttl_bars=resting)
        if not verdict:
            order = OrderRecord(client_id, name, quantity, limit_price, decision_id, OrderStatus.REJECTED,
                                reason=f"risk: {verdict.reason}", created_at=time)
            self.journal.record_order(order)
            self.hooks.risk_rejected(self, order, verdict.rule)
            return order
        order = self.journal.record_order(order)
        self.hooks.checkpoint(self, "order_journaled")
        self._cancel_resting(name, keep=client_id)
        update = self.broker.submit(order, None)
        self.hooks.checkpoint(self, "order_sent")
        if resting is not None and not update.status.is_final:
            self.expiry[client_id] = self.window.last_index + resting
            self.journal.record_event("resting_order", {"client_order_id": client_id,
                                                        "expiry_index": self.expiry[client_id]}, time)
        self.apply_update(update)
        sent = self.journal.order(client_id)
        assert sent is not None
        self.hooks.order_sent(self, sent)  # with the broker's answer: open, filled or rejected
        return sent

    def _cancel_resting(self, instrument: str, keep: str) -> None:
        """A new order on an instrument replaces the one resting there (the environment's rule)."""
        for order in self.journal.open_orders(instrument):
            if order.client_order_id != keep and order.status in (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED):
                update = self.broker.cancel(order.client_order_id)
                self.apply_update(OrderUpdate(update.client_order_id, update.status, update.filled_quantity,
                                                 update.exchange_order_id, "replaced by a new order"))
