"""A fake Bot API server per test and Telegram settings fast enough for tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from serve.notify.config import TelegramConfig
from tests.support.fake_telegram import FakeTelegram

TOKEN = "123456789:AAHfakeTokenForTestsOnly-abcdefghijkl"


def fast_config(fake: FakeTelegram, **overrides: Any) -> TelegramConfig:
    settings: dict[str, Any] = {
        "base_url": fake.base_url,
        "base_file_url": fake.base_file_url,
        "batch_window_seconds": 0.2,
        "min_send_interval_seconds": 0.0,
        "backoff_initial_seconds": 0.05,
        "backoff_max_seconds": 0.2,
        "request_timeout_seconds": 2.0,
        "poll_timeout_seconds": 0.2,
        **overrides,
    }
    return TelegramConfig(**settings)


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    with FakeTelegram(TOKEN) as server:
        yield server
