"""Thin Telegram adapter over the command layer: polling python-telegram-bot Application in a thread.

Every text command (``/status``, ``/killswitch flatten``, ...) goes to
:meth:`serve.commands.CommandHandler.handle` with the chat id as the caller's
identity; the reply text is sent back only to authorized chats, so a stranger
learns nothing (the refusal is logged by the handler).  A command older than
``max_command_age_seconds`` (queued at Telegram while the bot was down) is
refused rather than executed late.  The control call runs in a worker thread
so a slow actor never stalls polling.

The adapter owns its own asyncio loop in a daemon thread and keeps retrying
the start-up (``getMe``) while Telegram is unreachable, so an outage neither
blocks nor crashes the trading process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from datetime import UTC, datetime, timedelta

from telegram import BotCommand, Update
from telegram.error import InvalidToken, TelegramError
from telegram.ext import Application, ContextTypes, MessageHandler, filters

from serve.commands import Caller, CommandHandler, parse_command
from serve.monitoring.metrics import TradingMetrics
from serve.notify.config import TelegramConfig
from serve.notify.queue import TELEGRAM_TEXT_LIMIT
from serve.notify.redact import install_secret_redaction

log = logging.getLogger(__name__)
TRANSPORT = "telegram"


class TelegramCommandBot:
    """Answers operator commands from allowlisted chats through a :class:`CommandHandler`."""

    def __init__(
        self,
        handler: CommandHandler,
        token: str,
        config: TelegramConfig | None = None,
        metrics: TradingMetrics | None = None,
    ) -> None:
        install_secret_redaction(token)
        self.handler = handler
        self.config = config or TelegramConfig()
        self.metrics = metrics
        self._token = token
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_async: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="telegram-commands", daemon=True)
        self.application = self._build()

    def _build(self) -> Application:  # type: ignore[type-arg]
        c = self.config
        app = (
            Application.builder()
            .token(self._token)
            .base_url(c.base_url)
            .base_file_url(c.base_file_url)
            .connect_timeout(c.request_timeout_seconds)
            .read_timeout(c.request_timeout_seconds)
            .get_updates_connect_timeout(c.request_timeout_seconds)
            .get_updates_read_timeout(c.poll_timeout_seconds + c.request_timeout_seconds)
            .build()
        )
        app.add_handler(MessageHandler(filters.COMMAND, self._on_command))
        return app

    def start(self, wait: float | None = None) -> TelegramCommandBot:
        """Start polling in the background; with ``wait``, block up to that many seconds until it polls."""
        self._thread.start()
        if wait is not None:
            self._ready.wait(wait)
        return self

    @property
    def polling(self) -> bool:
        return self._ready.is_set() and not self._stop.is_set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._loop is not None and self._stop_async is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop_async.set)
        self._thread.join(timeout)

    # -- the bot thread ------------------------------------------------------------------------
    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop, self._stop_async = asyncio.get_running_loop(), asyncio.Event()
        if self._stop.is_set():
            return
        app = self.application
        if not await self._initialize(app):
            return
        try:
            await self._register_commands(app)
            assert app.updater is not None
            await app.updater.start_polling(
                poll_interval=self.config.poll_interval_seconds,
                timeout=timedelta(seconds=self.config.poll_timeout_seconds),
                allowed_updates=["message"],
                error_callback=self._on_polling_error,
            )
            await app.start()
            self._ready.set()
            await self._stop_async.wait()
        finally:
            await self._shutdown(app)

    async def _initialize(self, app: Application) -> bool:  # type: ignore[type-arg]
        """Initialize (getMe), retrying with backoff while Telegram is unreachable; False if stopped first."""
        assert self._stop_async is not None
        delay = self.config.backoff_initial_seconds
        while not self._stop.is_set():
            try:
                await app.initialize()
                return True
            except InvalidToken:
                log.error("telegram rejected the bot token; commands are disabled")
                return False
            except TelegramError as err:
                log.warning("telegram command bot cannot start yet (%s); retrying in %.1fs", err, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_async.wait(), delay)
            delay = min(2 * delay, self.config.backoff_max_seconds)
        return False

    async def _register_commands(self, app: Application) -> None:  # type: ignore[type-arg]
        try:
            await app.bot.set_my_commands(
                [BotCommand(name, text[:256]) for name, text in self.handler.commands]
            )
        except TelegramError as err:  # a cosmetic menu; commands work without it
            log.warning("could not register the command menu: %s", err)

    async def _shutdown(self, app: Application) -> None:  # type: ignore[type-arg]
        with contextlib.suppress(Exception):
            if app.updater is not None and app.updater.running:
                await app.updater.stop()
            if app.running:
                await app.stop()
            await app.shutdown()

    async def _on_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message, chat = update.effective_message, update.effective_chat
        if message is None or chat is None or not message.text:
            return
        user = update.effective_user
        caller = Caller(TRANSPORT, str(chat.id), user.username or user.full_name if user else "")
        name, args = parse_command(message.text)
        age = datetime.now(UTC) - message.date
        if age > timedelta(seconds=self.config.max_command_age_seconds):
            if self.handler.authorize(caller):
                log.warning("ignored /%s from %s: sent %s ago", name, caller, age)
                await self._reply(
                    message,
                    f"ignored /{name}: it was sent {age.total_seconds():.0f}s ago; "
                    "send it again if you still mean it",
                )
            else:
                log.warning("refused stale command /%s from %s: caller not allowlisted", name, caller)
            return
        reply = await asyncio.to_thread(self.handler.handle, name, args, caller)
        if reply.authorized:
            await self._reply(message, reply.text)

    def _on_polling_error(self, error: TelegramError) -> None:
        """getUpdates failed (PTB retries with backoff): log it without a traceback and count it."""
        log.warning("telegram polling failed: %s", error)
        if self.metrics is not None:
            self.metrics.telegram_failures.labels(method="getUpdates", reason="network").inc()

    async def _reply(self, message: object, text: str) -> None:
        if self.metrics is not None:
            self.metrics.telegram_requests.labels(method="sendMessage").inc()
        try:
            await message.reply_text(text[:TELEGRAM_TEXT_LIMIT])  # type: ignore[attr-defined]
        except TelegramError as err:
            log.warning("could not send a command reply: %s", err)
            if self.metrics is not None:
                self.metrics.telegram_failures.labels(method="sendMessage", reason="reply").inc()
