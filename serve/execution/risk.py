"""Risk limits checked before every order, and the kill switch.

:meth:`RiskManager.check` judges one :class:`~serve.execution.records.OrderIntent`
against the :class:`RiskLimits` and the trading state, and answers with a
:class:`RiskDecision` naming the rule that blocked it.  Rules, in order:

1. the trading state: ``frozen`` blocks every order, ``paused`` every order,
   ``flattening`` every order that does not move a position toward zero
   without crossing it;
2. maximum order notional (applies to every order: a fat-finger guard);
3. maximum position notional per instrument (an order that shrinks the
   position is always allowed, even above the limit);
4. maximum daily loss from the UTC day's starting equity (once breached,
   only orders that shrink positions pass, and :meth:`RiskManager.observe`
   trips the kill switch as configured).

The kill switch is a small thread-safe state machine, because commands arrive
from the Telegram or REST thread while the trading loop checks orders.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Literal

from features.data.schema import DataError
from serve.execution.records import OrderIntent, PortfolioState, require_utc, utc_now

_TOLERANCE = 1e-9  # relative slack on float comparisons of quantities


class TradingState(StrEnum):
    RUNNING = "running"  # orders pass the risk limits
    PAUSED = "paused"  # operator pause: no new orders until resume
    FLATTENING = "flattening"  # kill switch: only orders that close positions, then frozen
    FROZEN = "frozen"  # kill switch: no orders at all until an operator resumes


class KillMode(StrEnum):
    FLATTEN = "flatten"  # close every position, then freeze
    FREEZE = "freeze"  # stop placing orders, keep positions as they are


@dataclass(frozen=True)
class StateChange:
    previous: TradingState
    current: TradingState
    reason: str
    time: datetime


@dataclass(frozen=True)
class RiskLimits:
    """Hard limits in the quote currency; None disables a limit."""

    max_position_notional: float | None = None  # cap on |position| * price for any instrument
    position_limits: Mapping[str, float] = field(default_factory=dict)  # per-instrument caps overriding it
    max_order_notional: float | None = None  # cap on |quantity| * reference price of one order
    max_daily_loss: float | None = None  # loss from the UTC day's starting equity, quote currency
    max_daily_loss_fraction: float | None = None  # same, as a fraction of the day's starting equity
    on_daily_loss: Literal["block", "flatten", "freeze"] = "flatten"  # what a breach does beyond blocking

    def __post_init__(self) -> None:
        named = {
            "max_position_notional": self.max_position_notional,
            "max_order_notional": self.max_order_notional,
            "max_daily_loss": self.max_daily_loss,
            "max_daily_loss_fraction": self.max_daily_loss_fraction,
            **{f"position_limits[{k!r}]": v for k, v in self.position_limits.items()},
        }
        for name, value in named.items():
            if value is not None and not (math.isfinite(value) and value > 0):
                raise DataError(f"risk limit {name} must be a positive number or null, got {value!r}")
        if self.max_daily_loss_fraction is not None and self.max_daily_loss_fraction >= 1:
            raise DataError(f"max_daily_loss_fraction must be below 1, got {self.max_daily_loss_fraction}")
        if self.on_daily_loss not in ("block", "flatten", "freeze"):
            raise DataError(f"on_daily_loss must be block, flatten or freeze, got {self.on_daily_loss!r}")

    def position_limit(self, instrument: str) -> float | None:
        return self.position_limits.get(instrument, self.max_position_notional)


@dataclass(frozen=True)
class RiskDecision:
    allowed: bool
    reason: str  # human-readable, names the limit and the figures
    rule: str  # machine-readable: ok, state, order_notional, position, daily_loss

    def __bool__(self) -> bool:
        return self.allowed


ALLOWED = RiskDecision(True, "within limits", "ok")
Listener = Callable[[StateChange], None]


class KillSwitch:
    """running <-> paused; any -> flattening -> frozen (once flat); frozen/paused -> running by operator."""

    def __init__(self, state: TradingState = TradingState.RUNNING) -> None:
        self._state = TradingState(state)
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []

    @property
    def state(self) -> TradingState:
        return self._state

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener`` on every change (e.g. journal the event, notify the chat)."""
        self._listeners.append(listener)

    def pause(self, reason: str = "operator pause") -> StateChange | None:
        return self._move({TradingState.RUNNING}, TradingState.PAUSED, reason)

    def resume(self, reason: str = "operator resume") -> StateChange | None:
        return self._move({TradingState.PAUSED, TradingState.FROZEN}, TradingState.RUNNING, reason)

    def kill(self, mode: KillMode, reason: str = "kill switch") -> StateChange | None:
        target = TradingState.FROZEN if KillMode(mode) is KillMode.FREEZE else TradingState.FLATTENING
        return self._move(set(TradingState) - {target}, target, reason)

    def flattened(self, reason: str = "all positions flat") -> StateChange | None:
        return self._move({TradingState.FLATTENING}, TradingState.FROZEN, reason)

    def restore(self, state: TradingState) -> None:
        """Set the state recovered from the journal after a restart, without notifying."""
        with self._lock:
            self._state = TradingState(state)

    def _move(self, sources: set[TradingState], target: TradingState, reason: str) -> StateChange | None:
        with self._lock:
            if self._state not in sources:
                return None
            change = StateChange(self._state, target, reason, utc_now())
            self._state = target
        for listener in self._listeners:
            listener(change)
        return change


class RiskManager:
    """Checks orders against :class:`RiskLimits` and the :class:`KillSwitch`; tracks day-start equity."""

    def __init__(self, limits: RiskLimits, switch: KillSwitch | None = None) -> None:
        self.limits = limits
        self.switch = switch or KillSwitch()
        self._day: date | None = None
        self._day_start_equity = math.nan
        self._tripped_on: date | None = None

    @property
    def day_start_equity(self) -> float:
        return self._day_start_equity

    def restore_day(self, day_start: datetime, equity: float) -> None:
        """After a restart: the equity journaled at the start of the current UTC day."""
        self._day, self._day_start_equity = require_utc(day_start, "day start").date(), float(equity)

    def daily_pnl(self, portfolio: PortfolioState) -> float:
        self._roll_day(portfolio)
        return portfolio.equity - self._day_start_equity

    def daily_loss_breached(self, portfolio: PortfolioState) -> str | None:
        """The reason the daily loss limit is breached, or None."""
        loss = -self.daily_pnl(portfolio)
        limits = self.limits
        if limits.max_daily_loss is not None and loss >= limits.max_daily_loss:
            return f"daily loss {loss:.2f} reached the limit {limits.max_daily_loss:.2f}"
        fraction = limits.max_daily_loss_fraction
        if fraction is not None and loss >= fraction * self._day_start_equity:
            return (
                f"daily loss {loss:.2f} reached {fraction:.1%} of the day's starting equity "
                f"{self._day_start_equity:.2f}"
            )
        return None

    def observe(self, portfolio: PortfolioState) -> StateChange | None:
        """Call once per bar: trips the kill switch on a daily-loss breach, freezes once flat."""
        breach = self.daily_loss_breached(portfolio)
        engaged = self.switch.state in (TradingState.FLATTENING, TradingState.FROZEN)
        # Trip once per day: after an operator resumes, the breach blocks new exposure but does not re-trip.
        if breach and self.limits.on_daily_loss != "block" and not engaged and self._tripped_on != self._day:
            self._tripped_on = self._day
            return self.switch.kill(KillMode(self.limits.on_daily_loss), breach)
        flat = all(abs(q) <= _TOLERANCE for q in portfolio.positions.values())
        if self.switch.state is TradingState.FLATTENING and flat:
            return self.switch.flattened()
        return None

    def check(self, order: OrderIntent, portfolio: PortfolioState) -> RiskDecision:
        """Whether ``order`` may be sent now; the reason names the rule and the figures."""
        if order.quantity == 0 or not order.reference_price > 0:
            return RiskDecision(
                False,
                f"invalid order: quantity {order.quantity}, reference price {order.reference_price}",
                "invalid",
            )
        position = portfolio.position(order.instrument)
        shrinks = _shrinks(position, order.quantity)
        for rule in (self._state_rule, self._order_rule, self._position_rule, self._daily_loss_rule):
            decision = rule(order, portfolio, position, shrinks)
            if decision is not None:
                return decision
        return ALLOWED

    def _state_rule(
        self, order: OrderIntent, _: PortfolioState, position: float, shrinks: bool
    ) -> RiskDecision | None:
        state = self.switch.state
        if state is TradingState.FROZEN:
            return RiskDecision(False, "kill switch: trading is frozen", "state")
        if state is TradingState.PAUSED:
            return RiskDecision(False, "trading is paused", "state")
        if state is TradingState.FLATTENING and not shrinks:
            return RiskDecision(
                False,
                f"kill switch: flattening, and this order does not close the position "
                f"{position:g} of {order.instrument}",
                "state",
            )
        return None

    def _order_rule(self, order: OrderIntent, *_: object) -> RiskDecision | None:
        cap = self.limits.max_order_notional
        if cap is not None and order.notional > cap * (1 + _TOLERANCE):
            return RiskDecision(
                False,
                f"order notional {order.notional:.2f} exceeds max_order_notional {cap:.2f}",
                "order_notional",
            )
        return None

    def _position_rule(
        self, order: OrderIntent, _: PortfolioState, position: float, shrinks: bool
    ) -> RiskDecision | None:
        cap = self.limits.position_limit(order.instrument)
        after = abs(position + order.quantity) * order.reference_price
        if cap is None or shrinks or after <= cap * (1 + _TOLERANCE):
            return None
        return RiskDecision(
            False,
            f"position notional after the order {after:.2f} exceeds the limit {cap:.2f} "
            f"for {order.instrument}",
            "position",
        )

    def _daily_loss_rule(
        self, _: OrderIntent, portfolio: PortfolioState, __: float, shrinks: bool
    ) -> RiskDecision | None:
        breach = self.daily_loss_breached(portfolio)
        if breach is None or shrinks:
            return None
        return RiskDecision(False, f"{breach}: only orders that reduce positions are allowed", "daily_loss")

    def _roll_day(self, portfolio: PortfolioState) -> None:
        today = portfolio.time.date()
        if self._day != today:
            self._day, self._day_start_equity = today, portfolio.equity


def _shrinks(position: float, quantity: float) -> bool:
    """Does the order move the position toward zero without crossing it?"""
    return position * quantity < 0 and abs(quantity) <= abs(position) * (1 + _TOLERANCE)
