"""Telegram notifications that can never stop trading.

:class:`TelegramNotifier` runs python-telegram-bot's ``Bot`` on its own asyncio
loop in a daemon thread.  ``send`` only appends to a bounded
:class:`~serve.notify.queue.MessageQueue` (microseconds, never blocks); the
worker then

* waits ``batch_window_seconds`` after the oldest queued message (an alert,
  priority HIGH, closes the window at once) and merges the batch into as few
  texts of at most 4,096 characters as possible;
* keeps ``min_send_interval_seconds`` between two sendMessage calls;
* retries network errors and HTTP 5xx with exponential backoff, and HTTP 429
  after the ``retry_after`` the server asked for, for as long as the outage
  lasts (meanwhile new messages wait in the bounded queue, which drops its
  oldest low-priority messages when full and counts them);
* gives up only on permanent errors (bad request, forbidden chat, invalid
  token), logging and counting the undeliverable messages.

Every message is thus delivered, dropped from a full queue, undeliverable, or
abandoned when ``close`` runs out of time during an outage, and each is counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import warnings
from collections.abc import Sequence
from datetime import timedelta

from telegram import Bot
from telegram.error import BadRequest, NetworkError, RetryAfter, TelegramError
from telegram.request import HTTPXRequest

from serve.monitoring.metrics import TradingMetrics
from serve.notify.config import TelegramConfig
from serve.notify.message import Message, Notifier, Priority
from serve.notify.queue import MessageQueue, batch_texts
from serve.notify.redact import install_secret_redaction

log = logging.getLogger(__name__)
_IDLE_POLL_SECONDS = 1.0
SENT, FAILED, CLOSING = "sent", "failed", "closing"  # outcomes of delivering a text or a batch


def retry_after_seconds(error: RetryAfter) -> float:
    """Seconds the server asked to wait, whether PTB gives an int or a timedelta."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = error.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def make_bot(token: str, config: TelegramConfig) -> Bot:
    timeout = config.request_timeout_seconds
    request = HTTPXRequest(
        connection_pool_size=4,
        connect_timeout=timeout,
        read_timeout=timeout,
        write_timeout=timeout,
        pool_timeout=timeout,
    )
    return Bot(token, base_url=config.base_url, base_file_url=config.base_file_url, request=request)


class TelegramNotifier(Notifier):
    """Queued, batched, rate-limited, retrying delivery of messages to the configured chats."""

    def __init__(
        self,
        token: str,
        chat_ids: Sequence[int],
        config: TelegramConfig | None = None,
        metrics: TradingMetrics | None = None,
    ) -> None:
        install_secret_redaction(token)
        self.config = config or TelegramConfig()
        self.chat_ids = tuple(chat_ids)
        self.metrics = metrics
        self.queue = MessageQueue(self.config.queue_size, on_drop=self._on_drop)
        self.delivered = 0  # messages delivered to every chat
        self.undeliverable = 0  # messages given up after a permanent error
        self.abandoned = 0  # messages still being retried when close() ran out of time
        self._token = token
        self._in_flight = 0
        self._flush_requested = False
        self._stopping = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stop_event: asyncio.Event | None = None  # set on close, cuts retry sleeps short
        self._close_deadline = float("inf")
        self._last_send = -float("inf")
        self._thread = threading.Thread(target=self._run, name="telegram-notifier", daemon=True)

    # -- called from the trading thread -------------------------------------------------------
    def start(self) -> TelegramNotifier:
        self._thread.start()
        return self

    def send(self, message: Message) -> None:
        self.queue.put(message)
        if self.metrics is not None:
            self.metrics.telegram_queue.set(len(self.queue))
        self._poke()

    @property
    def dropped(self) -> int:
        return self.queue.total_dropped

    @property
    def pending(self) -> int:
        return len(self.queue) + self._in_flight

    def flush(self, timeout: float = 10.0) -> bool:
        """Send what is queued now, ignoring the batching window; True once nothing is pending."""
        self._flush_requested = True
        self._poke()
        deadline = time.monotonic() + timeout
        while self.pending and time.monotonic() < deadline:
            time.sleep(0.01)
        self._flush_requested = False
        return self.pending == 0

    def close(self, timeout: float = 5.0) -> None:
        """Try to deliver what is queued for up to ``timeout`` seconds, then stop the worker."""
        self._flush_requested = True
        self._close_deadline = time.monotonic() + timeout
        self._stopping.set()
        self._poke()
        if self._loop is not None and self._stop_event is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop_event.set)
        self._thread.join(timeout + 1.0)
        if self.pending or self.abandoned:
            log.warning(
                "telegram notifier closed with %d message(s) undelivered", self.pending + self.abandoned
            )

    def _poke(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closing: the worker drains on its own
                loop.call_soon_threadsafe(wake.set)

    def _on_drop(self, message: Message) -> None:
        if self.metrics is not None:
            self.metrics.telegram_dropped.inc()

    # -- the worker thread ---------------------------------------------------------------------
    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._wake, self._stop_event = asyncio.Event(), asyncio.Event()
        self._loop = asyncio.get_running_loop()
        if self._stopping.is_set():
            self._stop_event.set()
        bot = make_bot(self._token, self.config)
        try:
            await bot.initialize()
        except TelegramError as err:  # requests are ready; getMe failed, which sending does not need
            log.warning("telegram getMe failed at start (%s); will keep trying to send", err)
        try:
            await self._serve(bot)
        finally:
            with contextlib.suppress(Exception):
                await bot.shutdown()

    def _past_close_deadline(self) -> bool:
        return self._stopping.is_set() and time.monotonic() >= self._close_deadline

    async def _serve(self, bot: Bot) -> None:
        while not self._past_close_deadline():
            if not len(self.queue):
                if self._stopping.is_set():
                    return
                await self._wait(_IDLE_POLL_SECONDS)
                continue
            wait = self._window_left()
            if wait > 0:
                await self._wait(wait)
                continue
            # Count the batch in flight before taking it, so pending never reads 0 while it is being sent.
            self._in_flight = min(len(self.queue), self.config.max_batch_messages)
            batch = self.queue.take(self.config.max_batch_messages)
            self._in_flight = len(batch)
            outcome = await self._deliver_batch(bot, batch)
            if outcome == SENT:
                self.delivered += len(batch)
            elif outcome == FAILED:
                self.undeliverable += len(batch)
            else:
                self.abandoned += len(batch)
            self._in_flight = 0
            if outcome == CLOSING:
                return
            if self.metrics is not None:
                self.metrics.telegram_queue.set(len(self.queue))

    def _window_left(self) -> float:
        if self._flush_requested or self._stopping.is_set() or self.queue.has_priority(Priority.HIGH):
            return 0.0
        if len(self.queue) >= self.config.max_batch_messages:
            return 0.0
        age = self.queue.oldest_age(time.monotonic())
        return 0.0 if age is None else self.config.batch_window_seconds - age

    async def _wait(self, seconds: float) -> None:
        assert self._wake is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    async def _deliver_batch(self, bot: Bot, batch: list[Message]) -> str:
        """SENT if every text reached every chat, CLOSING if close() ran out of time, else FAILED."""
        outcome = SENT
        for text in batch_texts(batch):
            for chat_id in self.chat_ids:
                result = await self._deliver(bot, chat_id, text)
                if result == CLOSING:
                    return CLOSING
                outcome = outcome if result == SENT else FAILED
        return outcome

    async def _deliver(self, bot: Bot, chat_id: int, text: str) -> str:
        """Send one text, retrying transient failures until it goes through or close() runs out of time."""
        backoff = self.config.backoff_initial_seconds
        while True:
            await self._respect_rate_limit()
            self._count("requests")
            try:
                await bot.send_message(chat_id=chat_id, text=text)
                return SENT
            except RetryAfter as err:
                wait, reason = retry_after_seconds(err), "rate_limited"
            except BadRequest as err:  # a subclass of NetworkError, but retrying cannot fix it
                return self._give_up(chat_id, err)
            except NetworkError as err:  # connection errors, timeouts, HTTP 5xx
                wait, reason = backoff, "network"
                backoff = min(2 * backoff, self.config.backoff_max_seconds)
                log.warning("telegram send failed (%s); retrying in %.1fs", err, wait)
            except TelegramError as err:  # forbidden, invalid token, chat migrated, ...
                return self._give_up(chat_id, err)
            self._count("failures", reason)
            if not await self._pause_before_retry(wait):
                return CLOSING

    async def _pause_before_retry(self, wait: float) -> bool:
        """Sleep ``wait`` seconds; False if the notifier is closing and the close deadline comes first."""
        assert self._stop_event is not None
        if self._stopping.is_set():
            if time.monotonic() + wait > self._close_deadline:
                return False
            await asyncio.sleep(wait)
            return True
        with contextlib.suppress(TimeoutError):  # close() cuts the sleep short for one last attempt
            await asyncio.wait_for(self._stop_event.wait(), wait)
        return time.monotonic() < self._close_deadline

    def _give_up(self, chat_id: int, err: TelegramError) -> str:
        self._count("failures", "permanent")
        log.error("telegram message to chat %s undeliverable: %s", chat_id, err)
        return FAILED

    async def _respect_rate_limit(self) -> None:
        wait = self._last_send + self.config.min_send_interval_seconds - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self._last_send = time.monotonic()

    def _count(self, what: str, reason: str = "") -> None:
        if self.metrics is None:
            return
        if what == "requests":
            self.metrics.telegram_requests.labels(method="sendMessage").inc()
        else:
            self.metrics.telegram_failures.labels(method="sendMessage", reason=reason).inc()
