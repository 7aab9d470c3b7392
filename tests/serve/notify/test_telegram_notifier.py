"""The Telegram notifier with the real python-telegram-bot client against the local fake Bot API."""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Iterator

import pytest

from serve.monitoring.metrics import TradingMetrics
from serve.notify.message import Message, Priority
from serve.notify.redact import PLACEHOLDER
from serve.notify.telegram import TelegramNotifier
from tests.serve.notify.conftest import TOKEN, fast_config
from tests.support.fake_telegram import DROP, FakeTelegram


@pytest.fixture
def metrics() -> TradingMetrics:
    return TradingMetrics()


def delivered_lines(fake: FakeTelegram, chat_id: int = 42) -> list[str]:
    return [line for m in fake.sent_messages if m.chat_id == chat_id for line in m.text.split("\n")]


@pytest.fixture
def notifier(fake: FakeTelegram, metrics: TradingMetrics) -> Iterator[TelegramNotifier]:
    started = TelegramNotifier(TOKEN, [42], fast_config(fake), metrics).start()
    yield started
    started.close(timeout=1.0)


def test_a_burst_is_batched_into_one_request_per_chat(fake: FakeTelegram, metrics: TradingMetrics) -> None:
    notifier = TelegramNotifier(TOKEN, [42, 43], fast_config(fake), metrics).start()
    for i in range(30):
        notifier.send(Message(f"fill {i}", Priority.LOW, "fill"))
    assert notifier.flush(5.0)
    notifier.close(1.0)
    assert len(fake.calls_to("sendMessage")) == 2  # one merged text for each of the two chats
    assert delivered_lines(fake, 42) == delivered_lines(fake, 43) == [f"fill {i}" for i in range(30)]
    assert notifier.delivered == 30
    assert metrics.registry.get_sample_value("mft_telegram_requests_total", {"method": "sendMessage"}) == 2.0


def test_an_alert_closes_the_batching_window_at_once(fake: FakeTelegram) -> None:
    notifier = TelegramNotifier(TOKEN, [42], fast_config(fake, batch_window_seconds=30.0)).start()
    started = time.monotonic()
    notifier.send(Message("order new", Priority.LOW))
    notifier.send(Message("[CRITICAL] drawdown", Priority.HIGH))
    assert fake.wait_for(lambda f: len(f.sent_messages) == 1, timeout=5.0)
    assert time.monotonic() - started < 5.0
    assert delivered_lines(fake) == ["order new", "[CRITICAL] drawdown"]
    notifier.close(1.0)


def test_an_outage_queues_boundedly_without_blocking_and_recovers(
    fake: FakeTelegram, metrics: TradingMetrics
) -> None:
    config = fast_config(fake, queue_size=20, max_batch_messages=5)
    fake.set_outage(503)
    notifier = TelegramNotifier(TOKEN, [42], config, metrics).start()
    durations = []
    for i in range(10):
        started = time.perf_counter()
        notifier.send(Message(f"msg {i}", Priority.LOW))
        durations.append(time.perf_counter() - started)
    assert fake.wait_for(lambda f: len(f.calls_to("sendMessage")) >= 2)  # first batch (0-4) failing, retried
    for i in range(10, 50):
        started = time.perf_counter()
        notifier.send(Message(f"msg {i}", Priority.LOW))
        durations.append(time.perf_counter() - started)
        assert len(notifier.queue) <= 20
    assert statistics.median(durations) < 1e-3 and max(durations) < 0.05  # never blocks the trading loop
    assert notifier.dropped == 25  # 45 arrived behind the in-flight batch, 20 fit
    fake.set_outage(None)
    assert notifier.flush(10.0)
    notifier.close(1.0)
    assert delivered_lines(fake) == [f"msg {i}" for i in (*range(5), *range(30, 50))]
    assert (notifier.delivered, notifier.dropped, notifier.undeliverable) == (25, 25, 0)
    assert metrics.registry.get_sample_value("mft_telegram_dropped_total") == 25.0
    failures = metrics.registry.get_sample_value(
        "mft_telegram_failures_total", {"method": "sendMessage", "reason": "network"}
    )
    assert failures is not None and failures >= 2


def test_flood_control_waits_the_retry_after_the_server_asked_for(
    fake: FakeTelegram, notifier: TelegramNotifier
) -> None:
    fake.fail(429, times=1, method="sendMessage", retry_after=1)
    notifier.send(Message("alert", Priority.HIGH))
    assert notifier.flush(5.0)
    first, second = fake.calls_to("sendMessage")
    assert (first.status, second.status) == (429, 200)
    assert second.time - first.time >= 0.95


def test_dropped_connections_are_retried(fake: FakeTelegram, notifier: TelegramNotifier) -> None:
    fake.fail(DROP, times=2, method="sendMessage")
    notifier.send(Message("fill", Priority.HIGH))
    assert notifier.flush(5.0)
    assert [c.status for c in fake.calls_to("sendMessage")] == [DROP, DROP, 200]
    assert delivered_lines(fake) == ["fill"]


def test_a_permanent_error_is_not_retried_and_is_counted(
    fake: FakeTelegram, notifier: TelegramNotifier
) -> None:
    fake.fail(400, times=1, method="sendMessage")
    notifier.send(Message("bad", Priority.HIGH))
    assert notifier.flush(5.0)
    notifier.send(Message("good", Priority.HIGH))
    assert notifier.flush(5.0)
    assert [c.status for c in fake.calls_to("sendMessage")] == [400, 200]
    assert (notifier.delivered, notifier.undeliverable) == (1, 1)


def test_start_while_telegram_is_down_then_deliver(fake: FakeTelegram) -> None:
    fake.set_outage(DROP)
    notifier = TelegramNotifier(TOKEN, [42], fast_config(fake)).start()
    notifier.send(Message("queued during the outage", Priority.HIGH))
    assert fake.wait_for(lambda f: len(f.calls_to("sendMessage")) >= 1)
    fake.set_outage(None)
    assert notifier.flush(5.0)
    notifier.close(1.0)
    assert delivered_lines(fake) == ["queued during the outage"]


def test_close_delivers_what_is_queued(fake: FakeTelegram) -> None:
    notifier = TelegramNotifier(TOKEN, [42], fast_config(fake, batch_window_seconds=30.0)).start()
    notifier.send(Message("last words", Priority.LOW))
    notifier.close(timeout=3.0)
    assert delivered_lines(fake) == ["last words"]


def test_close_during_an_outage_gives_up_in_time_and_accounts_for_everything(fake: FakeTelegram) -> None:
    fake.set_outage(503)
    notifier = TelegramNotifier(TOKEN, [42], fast_config(fake, max_batch_messages=5)).start()
    for i in range(20):
        notifier.send(Message(f"msg {i}", Priority.LOW))
    assert fake.wait_for(lambda f: len(f.calls_to("sendMessage")) >= 1)
    started = time.monotonic()
    notifier.close(timeout=0.5)
    assert time.monotonic() - started < 2.0
    counts = (
        notifier.delivered,
        notifier.dropped,
        notifier.undeliverable,
        notifier.abandoned,
        notifier.pending,
    )
    assert counts == (0, 0, 0, 5, 15)  # the batch being retried, and the rest still queued
    requests = len(fake.calls_to("sendMessage"))
    time.sleep(0.3)
    assert len(fake.calls_to("sendMessage")) == requests  # the worker has stopped


def test_logs_never_contain_the_token(fake: FakeTelegram, caplog: pytest.LogCaptureFixture) -> None:
    wrong = "555555555:AAthisTokenIsRejectedByTheServer_zz"
    with caplog.at_level(logging.DEBUG):
        good = TelegramNotifier(TOKEN, [42], fast_config(fake)).start()
        fake.fail(503, times=1, method="sendMessage")
        good.send(Message("hello", Priority.HIGH))
        assert good.flush(5.0)
        good.close(1.0)
        rejected = TelegramNotifier(wrong, [42], fast_config(fake)).start()  # getMe: 401, token in the error
        rejected.send(Message("never delivered", Priority.HIGH))
        rejected.close(timeout=1.0)
    messages = [r.getMessage() for r in caplog.records]
    assert any("HTTP Request: POST" in m for m in messages)  # httpx logged the URLs ...
    assert any(PLACEHOLDER in m and "/sendMessage" in m for m in messages)  # ... redacted
    assert any("rejected" in m and PLACEHOLDER in m for m in messages)  # PTB's InvalidToken text, redacted
    assert TOKEN not in caplog.text and wrong not in caplog.text
    assert not any(TOKEN in m or wrong in m for m in messages)
