"""The transport-neutral command layer: parsing, authorization, replies and the audit trail."""

from __future__ import annotations

import json
import logging

import pytest

from serve.commands import Allowlist, Caller, CommandHandler, CommandRecord, parse_command
from serve.execution.risk import KillMode, TradingState
from tests.serve.fake_control import FakeControl

OPERATOR = Caller("telegram", "42", "op")
STRANGER = Caller("telegram", "99", "eve")


@pytest.fixture
def control() -> FakeControl:
    return FakeControl()


@pytest.fixture
def handler(control: FakeControl) -> CommandHandler:
    return CommandHandler(control, Allowlist([42]))


@pytest.mark.parametrize(
    ("text", "name", "args"),
    [
        ("/status", "status", []),
        ("/killswitch@mft_bot flatten", "killswitch", ["flatten"]),
        ("  /PnL  ", "pnl", []),
        ("", "", []),
    ],
)
def test_parse_command(text: str, name: str, args: list[str]) -> None:
    assert parse_command(text) == (name, args)


def test_allowlist_checks_identity_and_transport() -> None:
    allow = Allowlist([42, "7"], transport="telegram")
    assert allow(OPERATOR)
    assert allow(Caller("telegram", "7"))
    assert not allow(STRANGER)
    assert not allow(Caller("rest", "42"))


@pytest.mark.parametrize("command", ["status", "positions", "pnl", "pause", "resume", "killswitch", "help"])
def test_unauthorized_callers_are_refused_logged_and_never_reach_the_control(
    handler: CommandHandler, control: FakeControl, command: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="serve.commands"):
        reply = handler.handle(command, ["freeze"], STRANGER)
    assert (reply.authorized, reply.ok, reply.text) == (False, False, "not authorized")
    assert control.calls == []
    assert control.switch.state is TradingState.RUNNING
    refusals = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert refusals == [f"refused command /{command} from telegram:99 (eve): caller not allowlisted"]


def test_status_reply_text_and_data(handler: CommandHandler) -> None:
    reply = handler.handle_text("/status", OPERATOR)
    assert reply.ok and reply.authorized
    assert reply.text == (
        "state: running (paper)\nequity: 10,250.50\nopen orders: 2\n"
        "instruments: binance:BTC/USDT\nlast bar: 2024-03-01 12:00 UTC"
    )
    assert reply.data["last_bar"] == "2024-03-01T12:00:00+00:00"
    json.dumps(reply.data)  # JSON-safe for the REST adapter


def test_positions_skip_flat_instruments(handler: CommandHandler) -> None:
    reply = handler.handle("positions", [], OPERATOR)
    assert reply.text == "binance:BTC/USDT: +0.5 @ 40,000.00, mark 42,000.00, uPnL +1,000.00"
    assert reply.data == {
        "positions": [
            {
                "instrument": "binance:BTC/USDT",
                "quantity": 0.5,
                "average_price": 40_000.0,
                "mark_price": 42_000.0,
                "unrealized_pnl": 1_000.0,
            }
        ]
    }


def test_pnl_reply(handler: CommandHandler) -> None:
    reply = handler.handle("pnl", [], OPERATOR)
    assert reply.text.splitlines()[:3] == ["equity: 10,250.50", "today: +250.50", "since start: +1,250.50"]
    assert reply.data["day_pnl"] == pytest.approx(250.5)


def test_pause_resume_and_kill_switch_drive_the_state_machine(
    handler: CommandHandler, control: FakeControl
) -> None:
    assert handler.handle("pause", [], OPERATOR).text == "paused (state: paused)"
    assert handler.handle("pause", [], OPERATOR).ok is False  # already paused
    assert handler.handle("resume", [], OPERATOR).text == "resumed (state: running)"
    reply = handler.handle("killswitch", ["FLATTEN"], OPERATOR)
    assert reply.ok and control.switch.state is TradingState.FLATTENING
    assert control.calls[-1] == f"kill:{KillMode.FLATTEN.value}"


def test_kill_switch_needs_an_explicit_mode(handler: CommandHandler, control: FakeControl) -> None:
    for args in ([], ["now"], ["freeze", "flatten"]):
        reply = handler.handle("killswitch", args, OPERATOR)
        assert (reply.ok, reply.text) == (False, "usage: /killswitch flatten | freeze")
    assert control.switch.state is TradingState.RUNNING


def test_unknown_command_is_refused_and_logged(
    handler: CommandHandler, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="serve.commands"):
        reply = handler.handle("buy", ["BTC"], OPERATOR)
    assert (reply.authorized, reply.ok, reply.text) == (True, False, "unknown command /buy; try /help")
    assert "refused unknown command /buy" in caplog.text


def test_a_failing_control_becomes_an_error_reply(control: FakeControl) -> None:
    def broken() -> None:
        raise RuntimeError("actor unreachable")

    control.status = broken  # type: ignore[assignment,method-assign]
    reply = CommandHandler(control, Allowlist([42])).handle("status", [], OPERATOR)
    assert (reply.ok, reply.text) == (False, "/status failed: RuntimeError: actor unreachable")


def test_help_lists_every_command(handler: CommandHandler) -> None:
    names = [line.split(":")[0] for line in handler.handle("help", [], OPERATOR).text.splitlines()]
    assert names == ["/status", "/positions", "/pnl", "/pause", "/resume", "/killswitch", "/help"]


def test_audit_records_accepted_and_refused_commands(control: FakeControl) -> None:
    records: list[CommandRecord] = []
    handler = CommandHandler(control, Allowlist([42]), audit=records.append)
    handler.handle("pause", [], OPERATOR)
    handler.handle("resume", [], STRANGER)
    assert [(r.caller.identity, r.command, r.authorized, r.ok) for r in records] == [
        ("42", "pause", True, True),
        ("99", "resume", False, False),
    ]
