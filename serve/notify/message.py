"""Messages to the operator and the :class:`Notifier` interface that delivers them.

``send`` must never block the trading loop nor raise: a notifier that talks to
the network queues the message and delivers it from its own thread.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import IntEnum


class Priority(IntEnum):
    """Which messages survive when a queue is full: the lowest priority is dropped first."""

    LOW = 0  # routine activity: decisions, orders, fills
    NORMAL = 1  # summaries and command replies
    HIGH = 2  # alerts, risk events, kill switch


@dataclass(frozen=True)
class Message:
    text: str
    priority: Priority = Priority.NORMAL
    kind: str = "info"  # decision, order, fill, alert, summary, ... (for logs and filtering)
    created: float = field(default_factory=time.monotonic)  # when it was queued, monotonic seconds


class Notifier(ABC):
    """Delivers messages to the operator; ``send`` returns at once and never raises."""

    @abstractmethod
    def send(self, message: Message) -> None: ...

    def close(self, timeout: float = 5.0) -> None:  # noqa: B027 - most notifiers hold nothing to release
        """Deliver what is queued (up to ``timeout`` seconds) and release resources."""


_LEVELS = {Priority.LOW: logging.INFO, Priority.NORMAL: logging.INFO, Priority.HIGH: logging.WARNING}


class LoggingNotifier(Notifier):
    """Writes every message to a logger: the default when Telegram is not configured."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger("mft.notify")

    def send(self, message: Message) -> None:
        self.logger.log(_LEVELS[message.priority], "[%s] %s", message.kind, message.text)


class FanoutNotifier(Notifier):
    """Sends every message to several notifiers (e.g. Telegram and the log)."""

    def __init__(self, *notifiers: Notifier) -> None:
        self.notifiers = notifiers

    def send(self, message: Message) -> None:
        for notifier in self.notifiers:
            notifier.send(message)

    def close(self, timeout: float = 5.0) -> None:
        for notifier in self.notifiers:
            notifier.close(timeout)
