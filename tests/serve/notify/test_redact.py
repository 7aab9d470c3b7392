"""The bot token never reaches a log record, whatever logger or handler writes it."""

from __future__ import annotations

import logging
from urllib.parse import quote

import pytest

from serve.notify.redact import PLACEHOLDER, SecretRedactor, install_secret_redaction

SECRET = "987654321:AAredactMeFromEveryLogRecord_xyz"


def test_secret_is_scrubbed_from_messages_arguments_and_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    install_secret_redaction(SECRET)
    logger = logging.getLogger("some.library")
    with caplog.at_level(logging.DEBUG):
        logger.info("POST https://api.telegram.org/bot%s/sendMessage", SECRET)
        logger.warning(f"token {quote(SECRET, safe='')} url-encoded")
        try:
            raise ValueError(f"The token `{SECRET}` was rejected by the server.")
        except ValueError:
            logger.exception("start-up failed")
    assert SECRET not in caplog.text and quote(SECRET, safe="") not in caplog.text
    assert caplog.text.count(PLACEHOLDER) == 3
    assert all(SECRET not in r.getMessage() for r in caplog.records)


def test_filter_on_a_handler_and_short_secrets_are_refused() -> None:
    redactor = SecretRedactor()
    redactor.add("a-long-enough-secret")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "key=%s", ("a-long-enough-secret",), None)
    assert redactor.filter(record) and record.getMessage() == f"key={PLACEHOLDER}"
    with pytest.raises(ValueError, match="shorter than 8"):
        redactor.add("abc")
