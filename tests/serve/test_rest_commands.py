"""The REST adapter of the command layer: API keys, allowlist, status codes, the audit trail."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from features.data.schema import DataError
from serve.commands import Allowlist, CommandHandler, CommandRecord
from serve.config import CommandsConfig
from serve.execution.risk import TradingState
from serve.rest_commands import command_handler, command_router, identify, parse_keys
from tests.serve.fake_control import FakeControl

KEYS = {"ops-key-123456": "ops", "ci-key-1234567": "ci"}


@pytest.fixture
def setup() -> tuple[TestClient, FakeControl, list[CommandRecord]]:
    control, audit = FakeControl(), list[CommandRecord]()
    handler = CommandHandler(control, Allowlist(["ops"], transport="rest"), audit=audit.append)
    app = FastAPI()
    app.include_router(command_router(handler, KEYS))
    return TestClient(app), control, audit


def test_an_allowed_key_commands(setup: tuple[TestClient, FakeControl, list[CommandRecord]]) -> None:
    client, control, audit = setup
    status = client.post("/v1/commands/status", headers={"X-API-Key": "ops-key-123456"})
    assert status.status_code == 200 and status.json()["data"]["equity"] == 10_250.5
    kill = client.post(
        "/v1/commands/killswitch", json={"args": ["freeze"]}, headers={"X-API-Key": "ops-key-123456"}
    )
    assert kill.status_code == 200 and control.switch.state is TradingState.FROZEN
    assert [(r.caller.transport, r.caller.identity, r.command, r.args) for r in audit] == [
        ("rest", "ops", "status", ()),
        ("rest", "ops", "killswitch", ("freeze",)),
    ]


@pytest.mark.parametrize(
    ("key", "path", "body", "status", "text"),
    [
        (None, "status", None, 401, None),
        ("wrong-key-000000", "status", None, 401, None),
        ("ci-key-1234567", "pause", None, 403, "not authorized"),
        ("ops-key-123456", "launch", None, 404, "unknown command /launch; try /help"),
        (
            "ops-key-123456",
            "killswitch",
            {"args": ["everything"]},
            409,
            "usage: /killswitch flatten | freeze",
        ),
    ],
)
def test_refusals(
    setup: tuple[TestClient, FakeControl, list[CommandRecord]],
    key: str | None,
    path: str,
    body: dict[str, list[str]] | None,
    status: int,
    text: str | None,
) -> None:
    client, control, _ = setup
    headers = {"X-API-Key": key} if key else {}
    response = client.post(f"/v1/commands/{path}", json=body, headers=headers)
    assert response.status_code == status
    assert (
        response.json().get("text") == text
        if text
        else "missing or unknown X-API-Key" in response.json()["error"]
    )
    assert control.switch.state is TradingState.RUNNING and "pause" not in control.calls


def test_keys_come_from_the_environment_format() -> None:
    assert parse_keys("ops:abcdefgh, ci:12345678") == {"abcdefgh": "ops", "12345678": "ci"}
    assert parse_keys(None) == {}
    with pytest.raises(DataError, match="'name:key' pairs"):
        parse_keys("ops:short")
    assert (
        identify("12345678", {"12345678": "ci"}) == "ci" and identify("1234567", {"12345678": "ci"}) is None
    )
    assert command_handler(CommandsConfig()) is None
    handler = command_handler(CommandsConfig(control="tests.serve.fake_control:FakeControl", allow=("ops",)))
    assert handler is not None and next(name for name, _ in handler.commands) == "status"
