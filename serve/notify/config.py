"""Telegram settings: the token and chat ids come from the environment, everything else from YAML."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from features.data.schema import DataError

TOKEN_ENV = "MFT_TELEGRAM_TOKEN"
CHAT_IDS_ENV = "MFT_TELEGRAM_CHAT_IDS"


@dataclass(frozen=True)
class TelegramConfig:
    """Notifications and commands over the Telegram Bot API.

    The token is never written in a file: it is read from the environment
    variable named by ``token_env`` and redacted from every log record.
    """

    enabled: bool | None = None  # None: on exactly when the token variable is set
    token_env: str = TOKEN_ENV  # environment variable holding the bot token
    chat_ids: tuple[int, ...] = ()  # chats that receive notifications and may send commands
    chat_ids_env: str = CHAT_IDS_ENV  # comma-separated chat ids added to chat_ids
    base_url: str = "https://api.telegram.org/bot"  # Bot API root; the token is appended
    base_file_url: str = "https://api.telegram.org/file/bot"
    queue_size: int = 500  # messages waiting at most; when full the oldest low-priority message is dropped
    batch_window_seconds: float = 2.0  # messages arriving within this window go out as one text
    max_batch_messages: int = 50  # messages merged into one batch at most
    min_send_interval_seconds: float = 1.0  # between two sendMessage calls (Telegram allows ~1/s per chat)
    backoff_initial_seconds: float = 1.0  # first retry delay after a network error or HTTP 5xx
    backoff_max_seconds: float = 60.0  # retry delays double up to this
    request_timeout_seconds: float = 10.0  # connect / read / write timeout of one request
    poll_interval_seconds: float = 0.0  # pause between getUpdates calls of the command bot
    poll_timeout_seconds: float = 10.0  # long-poll timeout of getUpdates
    max_command_age_seconds: float = 300.0  # commands older than this (queued during an outage) are refused
    daily_summary_hour_utc: int = 0  # hour of the daily summary message

    def __post_init__(self) -> None:
        positive = (
            "queue_size",
            "max_batch_messages",
            "request_timeout_seconds",
            "backoff_initial_seconds",
            "backoff_max_seconds",
            "max_command_age_seconds",
        )
        for name in positive:
            if not getattr(self, name) > 0:
                raise DataError(f"telegram.{name} must be positive, got {getattr(self, name)!r}")
        for name in (
            "batch_window_seconds",
            "min_send_interval_seconds",
            "poll_interval_seconds",
            "poll_timeout_seconds",
        ):
            if getattr(self, name) < 0:
                raise DataError(f"telegram.{name} must be >= 0, got {getattr(self, name)!r}")
        if not 0 <= self.daily_summary_hour_utc <= 23:
            raise DataError(
                f"telegram.daily_summary_hour_utc must be 0..23, got {self.daily_summary_hour_utc}"
            )

    def token(self, environ: Mapping[str, str] | None = None) -> str | None:
        value = (os.environ if environ is None else environ).get(self.token_env, "").strip()
        return value or None

    def all_chat_ids(self, environ: Mapping[str, str] | None = None) -> tuple[int, ...]:
        """chat_ids plus those in the chat-ids environment variable, without duplicates, in order."""
        raw = (os.environ if environ is None else environ).get(self.chat_ids_env, "")
        extra: list[int] = []
        for part in filter(None, (p.strip() for p in raw.split(","))):
            try:
                extra.append(int(part))
            except ValueError as err:
                raise DataError(f"{self.chat_ids_env}: chat id {part!r} is not an integer") from err
        return tuple(dict.fromkeys((*self.chat_ids, *extra)))

    def is_enabled(self, environ: Mapping[str, str] | None = None) -> bool:
        has_token = self.token(environ) is not None
        if self.enabled and not has_token:
            raise DataError(f"telegram is enabled but the environment variable {self.token_env} is not set")
        return has_token if self.enabled is None else self.enabled
