"""Operator notifications and the Telegram transport: messages, the bounded queue, the Telegram
notifier and command bot, secret redaction and activity reports."""
