"""What the trading loop tells the outside world: metrics, notifications, monitors.

:class:`TraderHooks` is the no-op base the loop calls at each event; :class:`MonitoringHooks`
exports Prometheus metrics, posts decisions, orders, fills, alerts and the daily summary through
the notifier, and runs the performance, drift and bar-anomaly monitors.  A drift alarm resets the
stream's recurrent memory in the policy service.  No hook may stop trading: each failure is
logged and swallowed.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from serve.execution.brokers import OrderUpdate
from serve.execution.records import DecisionRecord, FillRecord, OrderRecord, OrderStatus
from serve.execution.risk import StateChange, TradingState
from serve.monitoring.alerts import Alert
from serve.monitoring.anomalies import BarAnomalyMonitor
from serve.monitoring.drift import DriftAlarm, DriftMonitor
from serve.monitoring.metrics import TradingMetrics
from serve.monitoring.performance import PerformanceMonitor

if TYPE_CHECKING:
    from serve.execution.trader import Trader
    from serve.notify.reporter import ActivityReporter

log = logging.getLogger(__name__)


class TraderHooks:
    """Called by the loop; every method is optional."""

    def bar(self, trader: Trader, time: datetime, equity: float) -> None: ...

    def decision(self, trader: Trader, decision: DecisionRecord) -> None: ...

    def order_sent(self, trader: Trader, order: OrderRecord) -> None: ...

    def order_final(self, trader: Trader, order: OrderRecord, update: OrderUpdate) -> None: ...

    def risk_rejected(self, trader: Trader, order: OrderRecord, rule: str) -> None: ...

    def fill(self, trader: Trader, fill: FillRecord) -> None: ...

    def state_change(self, trader: Trader, change: StateChange) -> None: ...

    def loop_latency(self, seconds: float) -> None: ...

    def checkpoint(self, trader: Trader, point: str) -> None:
        """A named point of the cycle (bar_seen, fills_booked, decided, order_journaled, order_sent)."""


class HookChain(TraderHooks):
    """Several hooks, each event passed to every one in order."""

    def __init__(self, *hooks: TraderHooks) -> None:
        self.hooks = hooks


def _fan_out(name: str) -> Callable[..., None]:
    def call(self: HookChain, *args: Any) -> None:
        for hook in self.hooks:
            getattr(hook, name)(*args)

    call.__name__ = name
    return call


HOOK_EVENTS = ("bar", "decision", "order_sent", "order_final", "risk_rejected", "fill", "state_change",
               "loop_latency", "checkpoint")
for _event in HOOK_EVENTS:
    setattr(HookChain, _event, _fan_out(_event))


class CrashDrill(TraderHooks):
    """Kills the process at one point of one bar, once: a recovery drill (``faults`` in the config).

    The marker file is written first, so the restarted process finds it and trades on.  The exit
    is ``os._exit``: no cleanup, no flush, exactly like a killed process.
    """

    def __init__(self, after_bars: int, point: str, marker: str) -> None:
        self.after_bars, self.point, self.marker = int(after_bars), point, marker

    def checkpoint(self, trader: Trader, point: str) -> None:
        if point != self.point or trader.bars_processed < self.after_bars or os.path.exists(self.marker):
            return
        with open(self.marker, "w") as handle:
            handle.write(f"crashed at {point} after {trader.bars_processed} bars\n")
        log.error("recovery drill: killing the process at %s after %d bars", point, trader.bars_processed)
        os._exit(17)


def _guarded(method: Callable[..., None]) -> Callable[..., None]:
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            method(*args, **kwargs)
        except Exception:  # monitoring must never stop trading
            log.exception("trader hook %s failed", method.__name__)

    wrapper.__name__ = method.__name__
    return wrapper


class MonitoringHooks(TraderHooks):
    """Metrics, notifications and monitors around one trader."""

    def __init__(self, metrics: TradingMetrics | None = None, reporter: ActivityReporter | None = None,
                 performance: PerformanceMonitor | None = None, drift: dict[str, DriftMonitor] | None = None,
                 anomalies: dict[str, BarAnomalyMonitor] | None = None) -> None:
        self.metrics, self.reporter, self.performance = metrics, reporter, performance
        self.drift, self.anomalies = drift or {}, anomalies or {}
        self.alerts: list[Alert] = []
        self._trader: Trader | None = None
        for monitor in self.drift.values():
            monitor.add_listener(self._on_break)

    def _alert(self, alert: Alert) -> None:
        self.alerts.append(alert)
        log.warning("%s", alert.text())
        if self.metrics is not None:
            self.metrics.alerts.labels(kind=alert.kind.value).inc()
        if self.reporter is not None:
            self.reporter.alert(alert)

    def _on_break(self, alarm: DriftAlarm) -> None:
        """A structural break: alert, and let the agents start their memory afresh."""
        self._alert(alarm.to_alert())
        if self._trader is not None:
            self._trader.decider.reset(self._trader.stream_id)
            self._trader.journal.record_event("memory_reset", {"instrument": alarm.instrument,
                                                               "channel": alarm.channel}, alarm.time)

    @_guarded
    def bar(self, trader: Trader, time: datetime, equity: float) -> None:
        self._trader = trader
        close = trader.window.close()
        for name, price in zip(trader.instruments, close, strict=True):
            if name in self.anomalies:
                for alert in self.anomalies[name].on_bar(time, price):
                    self._alert(alert)
            if name in self.drift:
                self.drift[name].update_price(price, time)
        if self.performance is not None and equity > 0 and math.isfinite(equity):
            for alert in self.performance.update(equity, time):
                self._alert(alert)
        if self.reporter is not None:
            from serve.notify.reporter import daily_summary

            self.reporter.maybe_daily_summary(time, lambda day: daily_summary(trader.journal, day))
        self._export(trader, close, equity)

    def _export(self, trader: Trader, close: list[float], equity: float) -> None:
        metrics = self.metrics
        if metrics is None:
            return
        metrics.equity.set(equity)
        for name, units, price in zip(trader.instruments, trader.book.units, close, strict=True):
            metrics.position.labels(instrument=name).set(units)
            metrics.position_notional.labels(instrument=name).set(units * price)
            if name in self.drift:
                metrics.drift_score.labels(instrument=name).set(self.drift[name].score)
        if self.performance is not None:
            metrics.rolling_sharpe.set(self.performance.sharpe.value)
            metrics.drawdown.set(self.performance.drawdown.value)
        metrics.set_trading_state(trader.risk.switch.state.value, [s.value for s in TradingState])

    @_guarded
    def decision(self, trader: Trader, decision: DecisionRecord) -> None:
        if self.reporter is not None:
            self.reporter.decision(decision)

    @_guarded
    def order_sent(self, trader: Trader, order: OrderRecord) -> None:
        if self.metrics is not None:
            self.metrics.orders_placed.labels(instrument=order.instrument, side=order.side).inc()
        if self.reporter is not None:
            self.reporter.order(order)

    @_guarded
    def order_final(self, trader: Trader, order: OrderRecord, update: OrderUpdate) -> None:
        if self.metrics is None:
            return
        if update.status is OrderStatus.FILLED:
            self.metrics.orders_filled.labels(instrument=order.instrument, side=order.side).inc()
        elif update.status is OrderStatus.REJECTED:
            self.metrics.orders_rejected.labels(instrument=order.instrument, reason="exchange").inc()
        else:
            self.metrics.orders_unfilled.labels(instrument=order.instrument, status=update.status.value).inc()

    @_guarded
    def risk_rejected(self, trader: Trader, order: OrderRecord, rule: str) -> None:
        if self.metrics is not None:
            self.metrics.orders_rejected.labels(instrument=order.instrument, reason=rule).inc()
        if self.reporter is not None:
            self.reporter.order(order)

    @_guarded
    def fill(self, trader: Trader, fill: FillRecord) -> None:
        if self.metrics is not None:
            self.metrics.fees.labels(instrument=fill.instrument).inc(max(fill.fee, 0.0))
        if self.reporter is not None:
            self.reporter.fill(fill)

    @_guarded
    def state_change(self, trader: Trader, change: StateChange) -> None:
        if self.reporter is not None:
            self.reporter.state_change(change)

    @_guarded
    def loop_latency(self, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.loop_latency.observe(seconds)
