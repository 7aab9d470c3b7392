"""Configuration of alerts and notifications (files in ``configs/alerts/``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from features.configio import CONFIG_ROOT, from_dict, read_yaml
from features.data.schema import DataError
from serve.monitoring.anomalies import AnomalyConfig
from serve.monitoring.drift import DriftConfig
from serve.monitoring.performance import PerformanceConfig
from serve.notify.config import TelegramConfig

ALERT_CONFIGS = CONFIG_ROOT / "alerts"


@dataclass(frozen=True)
class MetricsConfig:
    """The Prometheus endpoint."""

    enabled: bool = True
    address: str = "127.0.0.1"  # bind address; expose beyond localhost only behind a proxy
    port: int = 9108  # http://address:port/metrics

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise DataError(f"metrics.port must be 0..65535, got {self.port}")


@dataclass(frozen=True)
class AlertsConfig:
    """Every monitor threshold and the notification channels."""

    telegram: TelegramConfig = field(default_factory=TelegramConfig)
    drift: DriftConfig = field(default_factory=DriftConfig)
    anomalies: AnomalyConfig = field(default_factory=AnomalyConfig)
    performance: PerformanceConfig = field(default_factory=PerformanceConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> AlertsConfig:
        return from_dict(cls, values or {}, "alerts")

    @classmethod
    def load(cls, spec: str | Path = "default") -> AlertsConfig:
        """A name in configs/alerts ('default') or a path to a YAML file."""
        return cls.from_dict(read_yaml(spec, ALERT_CONFIGS, "alerts"))
