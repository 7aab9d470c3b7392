"""Operator commands through the real python-telegram-bot Application polling the local fake Bot API."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest

from serve.commands import Allowlist, CommandHandler
from serve.execution.risk import TradingState
from serve.monitoring.metrics import TradingMetrics
from serve.notify.telegram_bot import TelegramCommandBot
from tests.serve.fake_control import FakeControl
from tests.serve.notify.conftest import TOKEN, fast_config
from tests.support.fake_telegram import DROP, FakeTelegram

OPERATOR, STRANGER = 42, 666


class Chat:
    """A running bot with helpers to send a command and read the reply."""

    def __init__(self, fake: FakeTelegram, control: FakeControl, bot: TelegramCommandBot) -> None:
        self.fake, self.control, self.bot = fake, control, bot
        self.metrics = bot.metrics

    def ask(
        self, text: str, chat_id: int = OPERATOR, date: float | None = None, silent: bool = False
    ) -> str | None:
        """The bot's reply to ``text``; with ``silent``, None once the update was consumed without one."""
        before, polls = len(self.fake.sent_messages), len(self.fake.calls_to("getUpdates"))
        self.fake.inject_message(chat_id, text, date=date)
        if silent:  # delivered, confirmed by the next poll's offset, then a grace period for a reply
            assert self.fake.wait_for(lambda f: len(f.calls_to("getUpdates")) >= polls + 2)
            time.sleep(0.5)
        elif not self.fake.wait_for(lambda f: len(f.sent_messages) > before, timeout=5.0):
            return None
        return self.fake.sent_messages[-1].text if len(self.fake.sent_messages) > before else None


@pytest.fixture(scope="module")
def chat() -> Iterator[Chat]:
    with FakeTelegram(TOKEN) as fake:
        control = FakeControl()
        handler = CommandHandler(control, Allowlist([OPERATOR]))
        bot = TelegramCommandBot(handler, TOKEN, fast_config(fake), TradingMetrics())
        bot.start(wait=10.0)
        assert bot.polling
        yield Chat(fake, control, bot)
        bot.stop()


def test_start_up_registers_the_command_menu(chat: Chat) -> None:
    (registered,) = chat.fake.calls_to("setMyCommands")
    assert [c["command"] for c in registered.params["commands"]] == [
        "status",
        "positions",
        "pnl",
        "pause",
        "resume",
        "killswitch",
        "help",
    ]
    assert [c.method for c in chat.fake.calls[:2]] == ["getMe", "setMyCommands"]


def test_status(chat: Chat) -> None:
    reply = chat.ask("/status")
    assert reply is not None and reply.splitlines()[:3] == [
        "state: running (paper)",
        "equity: 10,250.50",
        "open orders: 2",
    ]


def test_positions(chat: Chat) -> None:
    assert chat.ask("/positions") == "binance:BTC/USDT: +0.5 @ 40,000.00, mark 42,000.00, uPnL +1,000.00"


def test_pnl(chat: Chat) -> None:
    assert chat.ask("/pnl") == (
        "equity: 10,250.50\ntoday: +250.50\nsince start: +1,250.50\n"
        "realised: +300.00\nunrealised: +1,000.00\nfees: 12.25"
    )


def test_pause_and_resume(chat: Chat) -> None:
    assert chat.ask("/pause") == "paused (state: paused)"
    assert chat.control.switch.state is TradingState.PAUSED
    assert chat.ask("/resume@mft_test_bot") == "resumed (state: running)"
    assert chat.control.switch.state is TradingState.RUNNING


def test_kill_switch(chat: Chat) -> None:
    assert chat.ask("/killswitch") == "usage: /killswitch flatten | freeze"
    assert chat.ask("/killswitch freeze") == "kill switch: freeze (state: frozen)"
    assert chat.control.switch.state is TradingState.FROZEN
    assert chat.ask("/resume") == "resumed (state: running)"


def test_strangers_get_no_answer_and_are_logged(chat: Chat, caplog: pytest.LogCaptureFixture) -> None:
    calls_before = list(chat.control.calls)
    with caplog.at_level(logging.WARNING, logger="serve.commands"):
        assert chat.ask("/killswitch flatten", chat_id=STRANGER, silent=True) is None
    assert chat.control.calls == calls_before
    assert chat.control.switch.state is TradingState.RUNNING
    assert f"refused command /killswitch from telegram:{STRANGER}" in caplog.text
    assert all(m.chat_id == OPERATOR for m in chat.fake.sent_messages)


def test_commands_queued_during_an_outage_are_not_run_late(chat: Chat) -> None:
    calls_before = list(chat.control.calls)
    reply = chat.ask("/pause", date=time.time() - 900)
    assert reply is not None and reply.startswith("ignored /pause: it was sent 9")
    assert chat.control.calls == calls_before


def test_polling_survives_an_outage_and_counts_it(chat: Chat) -> None:
    chat.fake.set_outage(503)
    assert chat.fake.wait_for(lambda f: sum(c.status == 503 for c in f.calls_to("getUpdates")) >= 2)
    chat.fake.set_outage(None)
    assert chat.ask("/status") is not None
    assert chat.metrics is not None
    failed = chat.metrics.registry.get_sample_value(
        "mft_telegram_failures_total", {"method": "getUpdates", "reason": "network"}
    )
    replies = chat.metrics.registry.get_sample_value("mft_telegram_requests_total", {"method": "sendMessage"})
    assert failed is not None and failed >= 2
    assert replies == len(chat.fake.sent_messages)


def test_the_bot_starts_once_telegram_comes_back(fake: FakeTelegram) -> None:
    fake.set_outage(DROP)
    control = FakeControl()
    bot = TelegramCommandBot(CommandHandler(control, Allowlist([OPERATOR])), TOKEN, fast_config(fake)).start()
    assert fake.wait_for(lambda f: len(f.calls_to("getMe")) >= 2)  # retrying getMe with backoff
    assert not bot.polling
    fake.set_outage(None)
    assert fake.wait_for(lambda _: bot.polling, timeout=10.0)
    chat = Chat(fake, control, bot)
    assert chat.ask("/pause") == "paused (state: paused)"
    bot.stop()
    assert len(fake.calls) < 200  # bounded request count
