"""Alerts raised by the monitors: what happened, how bad, where and when."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from serve.execution.records import utc_now


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class AlertKind(StrEnum):
    DRIFT = "drift"  # distribution change in returns or volatility
    STALE_BARS = "stale_bars"  # no new closed bar for too long
    MISSING_BARS = "missing_bars"  # a gap in bar timestamps
    OUT_OF_ORDER = "out_of_order_bar"  # a bar not after the previous one
    PRICE_SPIKE = "price_spike"  # a return far outside the robust recent scale
    EXCHANGE_ERRORS = "exchange_errors"  # too many failed exchange calls in a window
    LOW_SHARPE = "low_sharpe"  # rolling Sharpe ratio below its floor
    DRAWDOWN = "drawdown"  # drawdown beyond its limit
    RISK = "risk"  # risk limits and kill switch


@dataclass(frozen=True)
class Alert:
    kind: AlertKind
    message: str
    severity: Severity = Severity.WARNING
    instrument: str | None = None
    time: datetime = field(default_factory=utc_now)
    value: float | None = None  # the figure that crossed its threshold

    def text(self) -> str:
        where = f" {self.instrument}" if self.instrument else ""
        return f"[{self.severity.value.upper()}] {self.kind.value}{where}: {self.message}"
