"""Activity messages, their priorities, and the daily summary from the journal."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from serve.execution.journal import Journal
from serve.execution.records import DecisionRecord, FillRecord, OrderRecord, OrderStatus
from serve.execution.risk import KillMode, KillSwitch
from serve.monitoring.alerts import Alert, AlertKind, Severity
from serve.notify.message import LoggingNotifier, Message, Notifier, Priority
from serve.notify.reporter import ActivityReporter, DailySummary, daily_summary

BTC = "binance:BTC/USDT"
T0 = datetime(2024, 3, 1, tzinfo=UTC)


class Recorder(Notifier):
    def __init__(self) -> None:
        self.messages: list[Message] = []

    def send(self, message: Message) -> None:
        self.messages.append(message)


def test_each_activity_has_its_text_and_priority() -> None:
    recorder = Recorder()
    reporter = ActivityReporter(recorder)
    reporter.decision(DecisionRecord("d1", T0, {"weights": [0.5]}, "ppo-v3"))
    reporter.order(OrderRecord("c1", BTC, -0.25, limit_price=42_000.0, status=OrderStatus.SUBMITTED))
    reporter.order(OrderRecord("c2", BTC, 0.1, status=OrderStatus.REJECTED, reason="position limit"))
    reporter.fill(FillRecord("f1", "c1", BTC, -0.25, 42_000.0, 10.5, T0))
    reporter.alert(Alert(AlertKind.DRAWDOWN, "drawdown 11.0%", Severity.CRITICAL))
    switch = KillSwitch()
    switch.subscribe(reporter.state_change)
    switch.kill(KillMode.FREEZE, "operator")
    assert [(m.text, m.priority, m.kind) for m in recorder.messages] == [
        ('decision 2024-03-01 00:00 [ppo-v3]: {"weights":[0.5]}', Priority.LOW, "decision"),
        (f"order submitted: sell 0.25 {BTC} limit 42,000.00 [c1]", Priority.LOW, "order"),
        (f"order rejected: buy 0.1 {BTC} market (position limit) [c2]", Priority.NORMAL, "order"),
        (f"fill: sold 0.25 {BTC} @ 42,000.00, fee 10.5000 [c1]", Priority.LOW, "fill"),
        ("[CRITICAL] drawdown: drawdown 11.0%", Priority.HIGH, "alert"),
        ("trading state: running -> frozen (operator)", Priority.HIGH, "state"),
    ]


def test_daily_summary_is_sent_once_per_day_after_its_hour() -> None:
    recorder = Recorder()
    reporter = ActivityReporter(recorder, summary_hour_utc=6)
    days: list[date] = []

    def summarise(day: date) -> DailySummary:
        days.append(day)
        return DailySummary(day, 100.0, 110.0, 3, 2, 1, 0.5, 250.0)

    assert (
        reporter.maybe_daily_summary(T0 + timedelta(hours=7), summarise) is None
    )  # first call: notes the day
    assert reporter.maybe_daily_summary(T0 + timedelta(hours=23), summarise) is None
    assert reporter.maybe_daily_summary(T0 + timedelta(days=1, hours=5), summarise) is None  # before 06:00
    summary = reporter.maybe_daily_summary(T0 + timedelta(days=1, hours=6), summarise)
    assert summary is not None and days == [date(2024, 3, 1)]
    assert reporter.maybe_daily_summary(T0 + timedelta(days=1, hours=9), summarise) is None
    assert recorder.messages[-1].text == (
        "Daily summary 2024-03-01 (UTC): PnL +10.00, equity 110.00, 3 orders "
        "(1 rejected), 2 fills, volume 250.00, fees 0.50"
    )


def test_daily_summary_from_the_journal(tmp_path: Path) -> None:
    with Journal(f"sqlite:///{tmp_path / 'j.db'}") as journal:
        journal.record_positions(T0 + timedelta(hours=1), [], 10_000.0, 10_000.0)
        journal.record_order(OrderRecord("a", BTC, 0.1, created_at=T0 + timedelta(hours=2)))
        journal.record_order(
            OrderRecord("b", BTC, 0.1, status=OrderStatus.REJECTED, created_at=T0 + timedelta(hours=3))
        )
        journal.record_order(OrderRecord("c", BTC, 0.1, created_at=T0 + timedelta(days=1, hours=1)))
        journal.record_fill(FillRecord("f1", "a", BTC, 0.1, 40_000.0, 4.0, T0 + timedelta(hours=2)))
        journal.record_fill(FillRecord("f2", "c", BTC, 0.1, 41_000.0, 4.1, T0 + timedelta(days=1, hours=1)))
        journal.record_positions(T0 + timedelta(hours=23), [], 10_120.0, 6_000.0)
        summary = daily_summary(journal, date(2024, 3, 1))
    assert summary == DailySummary(date(2024, 3, 1), 10_000.0, 10_120.0, 2, 1, 1, 4.0, 4_000.0)
    assert summary.pnl == pytest.approx(120.0)


def test_logging_notifier_logs_by_priority(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="mft.notify"):
        LoggingNotifier().send(Message("kill switch", Priority.HIGH, "state"))
        LoggingNotifier().send(Message("fill", Priority.LOW, "fill"))
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, "[state] kill switch"),
        (logging.INFO, "[fill] fill"),
    ]
