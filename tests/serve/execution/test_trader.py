"""The trading loop in-process: replay equals backtest, writes precede actions, crashes lose and repeat nothing."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from features.data.schema import Dataset
from rl import cli as backtest_cli
from serve.commands import Allowlist, Caller, CommandHandler
from serve.execution.brokers import OrderUpdate
from serve.execution.config import ExecutionConfig
from serve.execution.deciders import Decider, Decision
from serve.execution.paper_broker import PaperBroker
from serve.execution.records import BarRecord, OrderRecord, OrderStatus
from serve.execution.session import TradingSession
from serve.execution.sources import ReplaySource
from serve.execution.spec import TradingSpec
from serve.execution.trader import Trader
from serve.execution.trader_hooks import HOOK_EVENTS, MonitoringHooks, TraderHooks
from serve.monitoring.drift import DetectorSpec, DriftConfig, DriftMonitor
from serve.monitoring.metrics import TradingMetrics
from serve.monitoring.performance import PerformanceMonitor
from serve.notify.message import Message, Notifier
from serve.notify.reporter import ActivityReporter
from tests.serve.execution.trading_support import (
    END,
    START,
    MomentumRule,
    RuleDecider,
    RulePolicy,
    btc_dataset,
    open_session,
    write_run,
)

CRASH_POINTS = ("bar_seen", "fills_booked", "decided", "order_journaled", "order_sent")


class Crash(BaseException):
    """Stands for the process dying: nothing after it runs, nothing is cleaned up."""


class CrashAt(TraderHooks):
    def __init__(self, point: str, after_bars: int) -> None:
        self.point, self.after_bars, self.fired = point, after_bars, False

    def checkpoint(self, trader: Trader, point: str) -> None:
        if point == self.point and trader.bars_processed >= self.after_bars and not self.fired:
            self.fired = True
            raise Crash(point)


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return btc_dataset()


@pytest.fixture(scope="module")
def run(dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_run(tmp_path_factory.mktemp("rule-run"), dataset)


@pytest.fixture(scope="module")
def uninterrupted(run: Path, dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> TradingSession:
    session = open_session(run, tmp_path_factory.mktemp("whole"), dataset)
    session.run()
    return session


def journal_outcome(session: TradingSession) -> dict[str, Any]:
    journal = session.trader.journal
    return {
        "orders": [(o.client_order_id, o.quantity, o.status, o.filled_quantity) for o in journal.orders()],
        "fills": [(f.exchange_fill_id, f.quantity, f.price, f.fee) for f in journal.fills()],
        "equity": [value for _, value in journal.equity_curve()],
    }


def test_replay_equals_the_backtest_of_the_same_rule(uninterrupted: TradingSession, run: Path,
                                                     dataset: Dataset) -> None:
    spec = TradingSpec.from_run(run)
    panel = spec.pipeline.panel(dataset)
    setup = backtest_cli.Setup(panel, spec.env_config, spec.timeframe)
    result = backtest_cli.run_on_span(RulePolicy(MomentumRule(spec)), setup, backtest_cli.Span(START, END), "rule")
    journal = uninterrupted.trader.journal
    equity = np.array([value for _, value in journal.equity_curve()])
    assert len(equity) == len(result.equity) == 168 + 1  # the decision bar before START, then every bar
    np.testing.assert_array_equal(equity, result.equity.to_numpy())
    filled = result.ledger.filter(result.ledger["status"] == "filled")
    fills = journal.fills()
    assert len(fills) == filled.height > 20
    for fill, row in zip(fills, filled.iter_rows(named=True), strict=True):
        assert (abs(fill.quantity), fill.price, fill.fee) == (row["filled_quantity"], row["fill_price"], row["fee"])
        assert fill.filled_at.replace(tzinfo=None) == row["fill_time"].replace(tzinfo=None)
    assert sum(f.fee for f in fills) > 0  # fees are on


def test_every_order_and_decision_is_journaled_before_the_broker_sees_it(run: Path, dataset: Dataset,
                                                                       tmp_path: Path) -> None:
    session = open_session(run, tmp_path, dataset)
    broker = session.trader.broker
    submit = broker.submit
    seen: list[str] = []

    def checked_submit(order: Any, bar: Any = None) -> Any:
        stored = session.trader.journal.order(order.client_order_id)
        assert stored is not None and stored.status is OrderStatus.NEW
        assert stored.decision_id is not None and session.trader.journal.decision(stored.decision_id) is not None
        seen.append(order.client_order_id)
        return submit(order, bar)

    broker.submit = checked_submit  # type: ignore[method-assign]
    session.run(max_bars=60)
    assert len(seen) > 5
    assert all(o.status is not OrderStatus.NEW for o in session.trader.journal.orders())


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_a_crash_anywhere_in_the_cycle_loses_and_repeats_nothing(point: str, run: Path, dataset: Dataset,
                                                                 uninterrupted: TradingSession,
                                                                 tmp_path: Path) -> None:
    crash = CrashAt(point, after_bars=40)
    session = open_session(run, tmp_path, dataset, hooks=crash)
    with pytest.raises(Crash):
        session.run()
    assert crash.fired
    restarted = open_session(run, tmp_path, dataset)  # a new process: journal and paper state from disk
    assert restarted.summary.discrepancies == []  # journal and broker agree after recovery
    restarted.run()
    assert journal_outcome(restarted) == journal_outcome(uninterrupted)
    ids = [o[0] for o in journal_outcome(restarted)["orders"]]
    assert len(ids) == len(set(ids))


def test_risk_limits_reject_orders_with_the_reason(run: Path, dataset: Dataset, tmp_path: Path) -> None:
    session = open_session(run, tmp_path, dataset, config={"risk": {"max_order_notional": 500.0}})
    session.run(max_bars=50)
    orders = session.trader.journal.orders()
    rejected = [o for o in orders if o.status is OrderStatus.REJECTED]
    assert rejected and all("max_order_notional" in o.reason for o in rejected)
    assert session.trader.journal.fills() == []  # every all-in buy exceeds 500 USDT


def test_operator_commands_pause_trading_and_the_kill_switch_flattens(run: Path, dataset: Dataset,
                                                                     tmp_path: Path) -> None:
    session = open_session(run, tmp_path, dataset)
    handler = CommandHandler(session, Allowlist(["42"]))
    operator = Caller("test", "42")
    session.run(max_bars=30)
    assert handler.handle_text("/status", operator).ok
    assert not handler.handle_text("/pause", Caller("test", "7")).authorized
    assert handler.handle_text("/pause", operator).ok
    decider = session.trader.decider
    calls = decider.calls  # type: ignore[attr-defined]
    session.run(max_bars=5)
    assert decider.calls == calls  # type: ignore[attr-defined]
    assert handler.handle_text("/resume", operator).ok
    while not any(session.trader.book.units):
        session.run(max_bars=1)
    assert handler.handle_text("/killswitch flatten", operator).ok
    session.run(max_bars=3)
    assert session.trader.book.units == [0.0]
    assert session.trader.risk.switch.state.value == "frozen"
    reopened = open_session(run, tmp_path, dataset)  # the frozen state survives a restart
    assert reopened.trader.risk.switch.state.value == "frozen"


def test_hook_chain_covers_every_event() -> None:
    assert set(HOOK_EVENTS) == {name for name in vars(TraderHooks) if not name.startswith("_")}


class Collected(Notifier):
    """A notifier that keeps what it is sent (the Telegram transport is tested against its fake server)."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    def send(self, message: Message) -> None:
        self.messages.append(message)


class ResettingDecider(RuleDecider):
    def __init__(self, rule: MomentumRule) -> None:
        super().__init__(rule)
        self.resets: list[str] = []

    def reset(self, stream_id: str) -> None:
        self.resets.append(stream_id)


def test_monitoring_posts_activity_exports_metrics_and_resets_memory_on_a_break(run: Path, dataset: Dataset,
                                                                               tmp_path: Path) -> None:
    spec = TradingSpec.from_run(run)
    notifier, metrics = Collected(), TradingMetrics()
    sensitive = DriftConfig(warmup=24, rewarm=12, returns=DetectorSpec("cusum", 0.1, 2.0),
                            volatility=DetectorSpec("cusum", 0.1, 2.0))
    hooks = MonitoringHooks(metrics, ActivityReporter(notifier), PerformanceMonitor(),
                            {name: DriftMonitor(sensitive, name) for name in spec.instruments})
    decider = ResettingDecider(MomentumRule(spec))
    session = open_session(run, tmp_path, dataset, hooks=hooks, decider=decider)
    session.run()
    kinds = {m.kind for m in notifier.messages}
    assert {"decision", "order", "fill"} <= kinds, kinds
    assert any(a.kind.value == "drift" for a in hooks.alerts)
    assert decider.resets and set(decider.resets) == {session.trader.stream_id}
    assert len(session.trader.journal.events("memory_reset")) == len(decider.resets)
    text = metrics.exposition().decode()
    placed = sum(s.value for f in metrics.registry.collect() if f.name == "mft_orders_placed" for s in f.samples
                 if s.name.endswith("_total"))
    assert placed == len([o for o in session.trader.journal.orders() if o.status is not OrderStatus.REJECTED])
    assert "mft_equity " in text
    assert "mft_loop_latency_seconds_count" in text


class EveryFourthBar(Decider):
    """A limit buy far below the market on every fourth decision, nothing in between."""

    def __init__(self) -> None:
        self.calls = 0

    def decide(self, stream_id: str, observation: np.ndarray) -> Decision:
        self.calls += 1
        return Decision([1.0, 1.0] if self.calls % 4 == 1 else [0.0, 0.0], "limit@1")


class RestsUntilCancelled(PaperBroker):
    """Fills like the paper broker but, like an exchange, never expires an order by itself."""

    def _submit(self, order: OrderRecord, bar: BarRecord | None) -> OrderUpdate:
        return super()._submit(dataclasses.replace(order, ttl_bars=None), bar)


def test_resting_limit_orders_end_after_their_time_to_live(dataset: Dataset, tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", dataset,
                    {"action": {"name": "limit", "params": {"max_offset": 0.5, "ttl_bars": 2}}})
    spec = TradingSpec.from_run(run)
    execution = ExecutionConfig.from_dict({"journal": {"url": f"sqlite:///{tmp_path / 'journal.db'}"},
                                           "state_dir": str(tmp_path), "policy_run": str(run)})
    session = TradingSession.open(
        execution, spec, ReplaySource(dataset, spec.keys, START, END), EveryFourthBar(),
        lambda rows, times: RestsUntilCancelled(spec.keys, spec.env_config, history=rows, times=times))
    journal = session.trader.journal
    placed_at: dict[str, int] = {}
    for bar in range(12):
        session.step()
        for order in journal.orders():
            placed_at.setdefault(order.client_order_id, bar)
            age = bar - placed_at[order.client_order_id]
            expected = OrderStatus.OPEN if age < 2 else OrderStatus.EXPIRED  # may fill on 2 bars, then ends
            assert order.status is expected, (order, age)
    assert len(placed_at) == 3 and all("time to live" in o.reason for o in journal.orders()[:2])
