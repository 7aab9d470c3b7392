"""Keep secrets (the Telegram bot token) out of every log record.

The Bot API puts the token in the URL path (``/bot<token>/sendMessage``), and
httpx logs every request URL at INFO, so redaction cannot be left to one
logger.  :func:`install_secret_redaction` wraps the logging record factory:
every record created afterwards, by any logger, has its formatted message,
exception text and stack text scrubbed before any handler or filter sees it.
:class:`SecretRedactor` is also a ``logging.Filter`` for handlers that are
configured explicitly.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

PLACEHOLDER = "[REDACTED]"
MIN_SECRET_LENGTH = 8  # shorter strings would redact ordinary words


class SecretRedactor(logging.Filter):
    """Replaces every registered secret (and its URL-encoded forms) in log records."""

    def __init__(self, placeholder: str = PLACEHOLDER) -> None:
        super().__init__()
        self.placeholder = placeholder
        self._variants: tuple[str, ...] = ()
        self._lock = threading.Lock()

    def add(self, secret: str) -> None:
        if len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(f"refusing to redact a secret shorter than {MIN_SECRET_LENGTH} characters")
        with self._lock:
            variants = set(self._variants) | {secret, quote(secret), quote(secret, safe="")}
            self._variants = tuple(sorted(variants, key=len, reverse=True))

    def redact(self, text: str) -> str:
        for variant in self._variants:
            if variant in text:
                text = text.replace(variant, self.placeholder)
        return text

    def scrub(self, record: logging.LogRecord) -> None:
        """Format the record's message and exception now, and redact them in place."""
        if not self._variants:
            return
        record.msg, record.args = self.redact(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)

    def filter(self, record: logging.LogRecord) -> bool:
        self.scrub(record)
        return True


_redactor = SecretRedactor()
_installed = False
_install_lock = threading.Lock()


def install_secret_redaction(*secrets: str) -> SecretRedactor:
    """Redact ``secrets`` from every log record created from now on, process-wide; idempotent."""
    global _installed
    for secret in secrets:
        _redactor.add(secret)
    with _install_lock:
        if not _installed:
            logging.setLogRecordFactory(_redacting_factory(logging.getLogRecordFactory()))
            _installed = True
    return _redactor


def _redacting_factory(previous: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        _redactor.scrub(record)
        return record

    return factory
