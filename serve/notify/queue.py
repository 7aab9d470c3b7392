"""A bounded, thread-safe message queue that drops the oldest lowest-priority message when full,
and the batching that turns a burst of messages into a few Telegram-sized texts.

``put`` takes a lock for a few microseconds and never waits for space, so the
trading loop is never blocked by a slow or absent consumer.  Every dropped
message is counted by priority.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Callable, Sequence

from serve.notify.message import Message, Priority

TELEGRAM_TEXT_LIMIT = 4096  # characters per sendMessage text
_ELLIPSIS = "…"


class MessageQueue:
    """FIFO of at most ``capacity`` messages; when full, the oldest message of the lowest priority goes."""

    def __init__(self, capacity: int, on_drop: Callable[[Message], None] | None = None) -> None:
        if capacity < 1:
            raise ValueError(f"queue capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._items: deque[Message] = deque()
        self._lock = threading.Lock()
        self._on_drop = on_drop
        self.dropped: Counter[Priority] = Counter()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, message: Message) -> Message | None:
        """Queue ``message``; returns the message dropped to make room (maybe ``message`` itself), if any."""
        with self._lock:
            victim = None
            if len(self._items) >= self.capacity:
                victim = self._evict_for(message)
            if victim is not message:
                self._items.append(message)
            if victim is not None:
                self.dropped[victim.priority] += 1
        if victim is not None and self._on_drop is not None:
            self._on_drop(victim)
        return victim

    def _evict_for(self, incoming: Message) -> Message:
        lowest = min(m.priority for m in self._items)
        if incoming.priority < lowest:
            return incoming
        for index, queued in enumerate(self._items):
            if queued.priority == lowest:
                del self._items[index]
                return queued
        raise AssertionError("unreachable: the lowest priority is present")

    def take(self, limit: int) -> list[Message]:
        """Remove and return up to ``limit`` messages, oldest first."""
        with self._lock:
            count = min(limit, len(self._items))
            return [self._items.popleft() for _ in range(count)]

    def oldest_age(self, now: float) -> float | None:
        with self._lock:
            return None if not self._items else now - self._items[0].created

    def has_priority(self, priority: Priority) -> bool:
        with self._lock:
            return any(m.priority >= priority for m in self._items)

    @property
    def total_dropped(self) -> int:
        return sum(self.dropped.values())


def batch_texts(messages: Sequence[Message], limit: int = TELEGRAM_TEXT_LIMIT) -> list[str]:
    """Join message texts with newlines into as few texts of at most ``limit`` characters as possible.

    Order is kept; a single text longer than the limit is cut and ends with an ellipsis.
    """
    texts: list[str] = []
    current = ""
    for message in messages:
        text = message.text if len(message.text) <= limit else message.text[: limit - 1] + _ELLIPSIS
        if current and len(current) + 1 + len(text) > limit:
            texts.append(current)
            current = ""
        current = f"{current}\n{text}" if current else text
    if current:
        texts.append(current)
    return texts
