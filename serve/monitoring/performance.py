"""Model degradation: rolling Sharpe ratio and drawdown of live or paper equity, with hysteresis.

An alert fires when the rolling Sharpe ratio falls below ``min_sharpe`` or the
drawdown from the equity peak reaches ``max_drawdown``, and only once per
crossing: it re-arms after the figure has recovered past the threshold by the
hysteresis margin, so a Sharpe ratio hovering around 1.0 does not alert on
every bar.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from datetime import datetime

from features.data.schema import DataError, bars_per_year
from serve.monitoring.alerts import Alert, AlertKind, Severity


@dataclass(frozen=True)
class PerformanceConfig:
    """Degradation alert thresholds on the equity curve of the running ensemble."""

    timeframe: str = "1h"  # bar length of the equity samples, for annualising the Sharpe ratio
    sharpe_window: int = 720  # bars in the rolling Sharpe ratio (720 x 1h = 30 days)
    sharpe_min_periods: int = 168  # no Sharpe verdict before this many returns
    min_sharpe: float = 1.0  # annualised; alert below it
    sharpe_hysteresis: float = 0.25  # re-arm once the Sharpe ratio is back above min_sharpe + this
    max_drawdown: float = 0.10  # fraction of the equity peak; alert at or beyond it
    drawdown_hysteresis: float = 0.02  # re-arm once the drawdown is back below max_drawdown - this

    def __post_init__(self) -> None:
        if not 2 <= self.sharpe_min_periods <= self.sharpe_window:
            raise DataError(
                f"need 2 <= sharpe_min_periods <= sharpe_window, got {self.sharpe_min_periods}, "
                f"{self.sharpe_window}"
            )
        if not 0 < self.max_drawdown < 1 or self.sharpe_hysteresis < 0 or self.drawdown_hysteresis < 0:
            raise DataError("max_drawdown must be in (0, 1) and the hysteresis margins >= 0")


class RollingSharpe:
    """Annualised Sharpe ratio of the last ``window`` simple returns (zero risk-free rate)."""

    def __init__(self, window: int, periods_per_year: float, min_periods: int) -> None:
        self.window, self.min_periods = window, min_periods
        self.scale = math.sqrt(periods_per_year)
        self.returns: deque[float] = deque(maxlen=window)

    def update(self, simple_return: float) -> float:
        self.returns.append(simple_return)
        return self.value

    @property
    def value(self) -> float:
        n = len(self.returns)
        if n < self.min_periods:
            return math.nan
        mean = math.fsum(self.returns) / n
        variance = math.fsum((r - mean) ** 2 for r in self.returns) / (n - 1)
        if variance <= 0:
            return math.nan
        return mean / math.sqrt(variance) * self.scale


class Drawdown:
    """Drawdown from the running equity peak, as a fraction of the peak."""

    def __init__(self) -> None:
        self.peak = -math.inf
        self.value = 0.0

    def update(self, equity: float) -> float:
        self.peak = max(self.peak, equity)
        self.value = 0.0 if self.peak <= 0 else 1.0 - equity / self.peak
        return self.value


class HysteresisTrigger:
    """Fires once when a value crosses ``threshold`` the bad way; re-arms beyond ``threshold +- margin``."""

    def __init__(self, threshold: float, margin: float, bad_when_below: bool) -> None:
        self.threshold, self.margin, self.below = threshold, margin, bad_when_below
        self.armed = True

    def update(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.below:
            bad, recovered = value < self.threshold, value >= self.threshold + self.margin
        else:
            bad, recovered = value >= self.threshold, value < self.threshold - self.margin
        if self.armed and bad:
            self.armed = False
            return True
        if not self.armed and recovered:
            self.armed = True
        return False


class PerformanceMonitor:
    """Feeds equity samples into the rolling Sharpe ratio and drawdown; returns alerts on fresh crossings."""

    def __init__(self, config: PerformanceConfig | None = None) -> None:
        self.config = config or PerformanceConfig()
        c = self.config
        self.sharpe = RollingSharpe(c.sharpe_window, bars_per_year(c.timeframe), c.sharpe_min_periods)
        self.drawdown = Drawdown()
        self._sharpe_trigger = HysteresisTrigger(c.min_sharpe, c.sharpe_hysteresis, bad_when_below=True)
        self._drawdown_trigger = HysteresisTrigger(
            c.max_drawdown, c.drawdown_hysteresis, bad_when_below=False
        )
        self._last_equity: float | None = None

    def update(self, equity: float, time: datetime) -> list[Alert]:
        if not (math.isfinite(equity) and equity > 0):
            raise DataError(f"performance monitor: equity must be positive and finite, got {equity}")
        alerts: list[Alert] = []
        if self._last_equity is not None:
            sharpe = self.sharpe.update(equity / self._last_equity - 1.0)
            if self._sharpe_trigger.update(sharpe):
                alerts.append(
                    Alert(
                        AlertKind.LOW_SHARPE,
                        f"rolling Sharpe ratio {sharpe:.2f} fell below "
                        f"{self.config.min_sharpe:.2f} ({len(self.sharpe.returns)} bars)",
                        Severity.WARNING,
                        None,
                        time,
                        sharpe,
                    )
                )
        self._last_equity = equity
        drawdown = self.drawdown.update(equity)
        if self._drawdown_trigger.update(drawdown):
            alerts.append(
                Alert(
                    AlertKind.DRAWDOWN,
                    f"drawdown {drawdown:.1%} from peak {self.drawdown.peak:,.2f} "
                    f"reached the limit {self.config.max_drawdown:.1%}",
                    Severity.CRITICAL,
                    None,
                    time,
                    drawdown,
                )
            )
        return alerts
