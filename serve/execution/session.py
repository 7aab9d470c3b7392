"""A trading session: a :class:`~serve.execution.trader.Trader` with its source, recovered from its journal.

``TradingSession.open`` builds everything from an :class:`ExecutionConfig` and a bar source, and
recovers: the bars already processed are skipped, the account book is rebuilt from the journaled
fills (so fees, units and entry prices are exactly what was booked), the kill-switch state and the
day's starting equity are restored, and the journal is reconciled with the broker (positions and
open orders; every difference is journaled as an event and logged).  The session then trades bar
by bar with :meth:`run` and answers operator commands (:class:`serve.commands.TradingControl`)
from any thread.
"""

from __future__ import annotations

import logging
import threading
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

from envs.sizing import make_sizing_rule
from features.data.schema import OHLCV_COLUMNS, TIMESTAMP, DataError, Dataset
from serve.commands import ControlResult, PnlReport, PositionReport, StatusReport
from serve.execution.book import reconcile
from serve.execution.brokers import ExecutionBroker
from serve.execution.config import ExecutionConfig
from serve.execution.deciders import Decider
from serve.execution.journal import Journal
from serve.execution.live_features import LiveFeatures
from serve.execution.market_window import BarWindow, as_datetime64
from serve.execution.records import OrderStatus
from serve.execution.risk import KillMode, RiskManager, TradingState
from serve.execution.sources import BarRow, BarSource
from serve.execution.spec import TradingSpec
from serve.execution.trader import CycleResult, Trader
from serve.execution.trader_hooks import TraderHooks

log = logging.getLogger(__name__)
SESSION_EVENT = "session_start"


@dataclass
class SessionSummary:
    bars: int = 0
    decisions: int = 0
    orders: int = 0
    fills: int = 0
    first: datetime | None = None
    last: datetime | None = None
    equity: float = float("nan")
    discrepancies: list[str] = field(default_factory=list)


def aligned_history(history: Dataset, spec: TradingSpec, since: datetime | None) -> tuple[np.ndarray, np.ndarray]:
    """[T, N, 5] bars and their times where every instrument has a bar (from ``since`` on)."""
    frames = [history[k].select(TIMESTAMP, *OHLCV_COLUMNS) for k in spec.keys]
    joined = frames[0]
    for i, frame in enumerate(frames[1:], start=1):
        joined = joined.join(frame, on=TIMESTAMP, how="inner", suffix=f"_{i}")
    joined = joined.sort(TIMESTAMP)
    if since is not None:
        joined = joined.filter(pl.col(TIMESTAMP) >= since)
    columns = [[c if i == 0 else f"{c}_{i}" for c in OHLCV_COLUMNS] for i in range(len(frames))]
    rows = np.stack([joined.select(cols).to_numpy() for cols in columns], axis=1).astype(np.float64)
    times = joined[TIMESTAMP].dt.replace_time_zone(None).to_numpy().astype("datetime64[us]")
    return rows.reshape(len(times), len(frames), len(OHLCV_COLUMNS)), times


class TradingSession:
    """One account traded bar by bar; thread-safe for operator commands."""

    def __init__(self, trader: Trader, source: BarSource, config: ExecutionConfig, first: BarRow | None,
                 started: datetime) -> None:
        self.trader, self.source, self.config = trader, source, config
        self._pending = first  # the first row, already fetched to find the history
        self.started = started
        self.lock = threading.RLock()
        self.stop_event = threading.Event()
        self.summary = SessionSummary()

    # -- building and recovering ----------------------------------------------------------------

    @classmethod
    def open(cls, config: ExecutionConfig, spec: TradingSpec, source: BarSource, decider: Decider,
             make_broker: Callable[[np.ndarray, np.ndarray], ExecutionBroker], journal: Journal | None = None,
             hooks: TraderHooks | None = None) -> TradingSession:
        """Build the trader for ``config`` and recover it from its journal.

        ``make_broker(history_rows, history_times)`` builds the broker (the paper broker starts its
        market window from the same bars as the trader).
        """
        journal = journal or config.journal.open()
        resume = _resume_after(journal)
        first = source.next_row(resume)
        if first is None:
            raise DataError("the bar source has no bar to start from" + (f" after {resume}" if resume else ""))
        history = source.history(first.time)
        window_start = _window_start(journal, history, spec, first.time)
        rows, times = aligned_history(history, spec, window_start)
        config_env = spec.env_config
        sizing = make_sizing_rule(config_env.sizing.name, dict(config_env.sizing.params))
        window = BarWindow(spec.keys, config_env.costs, sizing, rows, times)
        features = LiveFeatures(spec.pipeline, spec.selection, spec.feature_names, spec.keys, config_env.window,
                                history)
        cash = config.initial_cash if config.initial_cash is not None else config_env.initial_cash
        trader = Trader(spec, broker=make_broker(rows, times), decider=decider, journal=journal,
                        risk=RiskManager(config.risk), features=features, window=window, run_id=config.run_id,
                        stream_id=config.stream, initial_cash=cash, hooks=hooks)
        trader.live = source.live
        session = cls(trader, source, config, first, datetime.now(UTC))
        session._recover(resume)
        return session

    def _recover(self, resume: datetime | None) -> None:
        trader, journal = self.trader, self.trader.journal
        window_times = trader.window.times
        session = journal.last_event(SESSION_EVENT)
        if session is not None and resume is not None:  # count idle bars from the session's first bar
            first = as_datetime64(datetime.fromisoformat(session.detail["first_bar"]))
            start = trader.window.offset + bisect_left(window_times, first)
            trader.book.start_bar = trader.book.last_trade_bar = start
        for fill in journal.fills():
            stamp = as_datetime64(fill.filled_at)
            index = trader.window.offset + bisect_right(window_times, stamp) - 1
            trader.book.apply_fill(trader.index[fill.instrument], fill.quantity, fill.price, fill.fee, index)
        trader.book.mark(trader.window.close())
        trader.bars_processed = len(journal.processed_bar_times())
        trader.last_time = resume
        latest = journal.latest_positions()
        trader.last_snapshot = latest[0] if latest is not None else None
        state = journal.last_event("trading_state")
        if state is not None:
            trader.risk.switch.restore(TradingState(state.detail["state"]))
        if resume is not None:
            day = journal.day_start_equity(resume)
            if day is not None:
                trader.risk.restore_day(*day)
        for event in journal.events("resting_order"):
            order = journal.order(event.detail["client_order_id"])
            if order is not None and not order.status.is_final:
                trader.expiry[order.client_order_id] = int(event.detail["expiry_index"])
        self.summary.discrepancies = self._reconcile()

    def _reconcile(self) -> list[str]:
        trader = self.trader
        # First ask the broker about every order the journal has not seen end: one journaled as NEW may
        # have been sent just before the crash, and an open one may have filled or expired meanwhile.
        for order in trader.journal.open_orders():
            update = trader.broker.order_state(order.client_order_id)
            if update is not None:
                trader.apply_update(update)
        # Still NEW: journaled, never sent; the interrupted bar is processed again and sends it.
        journal_open = [o for o in trader.journal.open_orders() if o.status is not OrderStatus.NEW]
        account = trader.broker.account()
        found = reconcile(dict(zip(trader.instruments, trader.book.units, strict=True)), account.units,
                          journal_open, [o.client_order_id for o in trader.broker.open_orders()])
        for problem in found:
            log.warning("reconciliation: %s", problem)
            trader.journal.record_event("reconciliation", {"kind": problem.kind, "subject": problem.subject,
                                                           "journal": problem.journal, "broker": problem.broker})
        return [str(p) for p in found]

    # -- trading --------------------------------------------------------------------------------

    def step(self) -> CycleResult | None:
        """Process the next closed bar row if there is one."""
        row, self._pending = (self._pending, None) if self._pending is not None else (
            self.source.next_row(self.trader.last_time), None)
        if row is None:
            return None
        with self.lock:
            result = self.trader.process(row.bars, final=row.final)
        self._count(result)
        return result

    def _count(self, result: CycleResult) -> None:
        s = self.summary
        s.bars += 1
        s.decisions += int(result.decided)
        s.orders += len(result.orders)
        s.fills += len(result.fills)
        s.first = s.first or result.time
        s.last, s.equity = result.time, result.equity

    def run(self, max_bars: int | None = None, progress: Callable[[CycleResult], None] | None = None
            ) -> SessionSummary:
        """Trade until the source is exhausted, ``stop()`` is called or ``max_bars`` bars are done."""
        done = 0
        while not self.stop_event.is_set() and (max_bars is None or done < max_bars):
            result = self.step()
            if result is None:
                if self.source.exhausted:
                    break
                self.stop_event.wait(self.config.poll_seconds)
                continue
            done += 1
            if progress is not None:
                progress(result)
        return self.summary

    def stop(self) -> None:
        self.stop_event.set()

    # -- TradingControl -------------------------------------------------------------------------

    def status(self) -> StatusReport:
        with self.lock:
            t = self.trader
            return StatusReport(t.risk.switch.state.value, t.broker.mode, t.book.net_worth,
                                len(t.journal.open_orders()), t.instruments, t.last_time, self.started)

    def positions(self) -> list[PositionReport]:
        with self.lock:
            t = self.trader
            close = t.window.close() if len(t.window) else [0.0] * len(t.instruments)
            return [PositionReport(name, units, entry, price) for name, units, entry, price in
                    zip(t.instruments, t.book.units, t.book.entry, close, strict=True)]

    def pnl(self) -> PnlReport:
        with self.lock:
            t = self.trader
            books = t.journal.positions_from_fills()
            unrealized = sum(p.unrealized_pnl for p in self.positions())
            day = t.risk.day_start_equity
            return PnlReport(t.book.net_worth, day if day == day else t.book.net_worth, t.initial_cash,
                             sum(b.realized_pnl for b in books.values()), unrealized,
                             sum(b.fees for b in books.values()))

    def pause(self) -> ControlResult:
        return self._control(lambda s: s.pause(), "paused", "not running")

    def resume(self) -> ControlResult:
        return self._control(lambda s: s.resume(), "resumed", "nothing to resume")

    def kill_switch(self, mode: KillMode) -> ControlResult:
        return self._control(lambda s: s.kill(mode), f"kill switch: {mode.value}", "already engaged")

    def _control(self, action: Callable[..., object], done: str, unchanged: str) -> ControlResult:
        with self.lock:
            switch = self.trader.risk.switch
            change = action(switch)
            if change is not None:
                self.trader.journal.record_event("trading_state", {"state": switch.state.value, "reason": done})
            return ControlResult(change is not None, switch.state.value, done if change is not None else unchanged)


def _resume_after(journal: Journal) -> datetime | None:
    processed = journal.last_processed_bars()
    return min(processed.values()) if processed else None


def _window_start(journal: Journal, history: Dataset, spec: TradingSpec, first: datetime) -> datetime | None:
    """The first bar of the market window: fixed at the session's first start, so a restart rebuilds it."""
    event = journal.last_event(SESSION_EVENT)
    if event is not None:
        return datetime.fromisoformat(event.detail["window_start"])
    _, times = aligned_history(history, spec, None)
    keep = spec.env_config.window - 1  # a backtest's environment starts with these bars before its first decision
    start = times[-keep] if keep and len(times) >= keep else (times[0] if len(times) else None)
    if start is None:
        raise DataError("no history bars before the first bar: features and costs cannot warm up")
    moment = datetime.fromisoformat(str(start)).replace(tzinfo=UTC)
    journal.record_event(SESSION_EVENT, {"window_start": moment.isoformat(), "first_bar": first.isoformat()})
    return moment


def paper_state_path(config: ExecutionConfig) -> Path:
    return Path(config.state_dir) / f"{config.run_id}.paper.json"
