"""Configuration of live or paper execution (files in ``configs/execution/``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from features.configio import CONFIG_ROOT, from_dict, read_yaml
from features.data.schema import DataError
from serve.execution.journal import DEFAULT_URL, Journal
from serve.execution.risk import RiskLimits

EXECUTION_CONFIGS = CONFIG_ROOT / "execution"


@dataclass(frozen=True)
class JournalConfig:
    """Where and how durably the journal is written."""

    url: str = DEFAULT_URL  # any SQLAlchemy URL; relative SQLite paths are relative to the working directory
    synchronous: Literal["FULL", "NORMAL", "EXTRA"] = "FULL"  # SQLite only: FULL survives power loss too

    def open(self) -> Journal:
        return Journal(self.url, synchronous=self.synchronous)


@dataclass(frozen=True)
class ExchangeConfig:
    """The venue of live trading (and of live bars in paper trading); keys come from the environment."""

    id: str = ""  # a ccxt exchange id, e.g. binance; empty: the exchange of the run's instruments
    options: dict[str, Any] = field(default_factory=dict)  # extra ccxt constructor settings (no secrets)
    history_bars: int = 1000  # bars fetched at start to warm the features up


@dataclass(frozen=True)
class FaultConfig:
    """A recovery drill: crash the process once, at a chosen point of a chosen bar (off by default)."""

    crash_after_bars: int | None = None  # processed bars before the crash; None: never crash
    crash_at: Literal["bar_seen", "fills_booked", "decided", "order_journaled", "order_sent"] = "order_journaled"
    marker: str = ""  # file written before crashing, so the restarted process does not crash again


@dataclass(frozen=True)
class ExecutionConfig:
    """One trading process: paper or live, its journal and its risk limits."""

    mode: Literal["paper", "live"] = "paper"  # paper trades against a simulated broker
    run_id: str = "paper"  # part of every client order id, so two runs never collide on an exchange
    journal: JournalConfig = field(default_factory=JournalConfig)
    risk: RiskLimits = field(default_factory=RiskLimits)
    policy_run: str = ""  # training run whose instruments, features and action rules are traded (served policy)
    serve_url: str = "http://127.0.0.1:8000"  # the policy service (mft serve) answering /v1/decide
    stream_id: str = ""  # trading stream at the service (recurrent memory, A/B variant); default run_id
    initial_cash: float | None = None  # paper account cash; default: the run's environment initial_cash
    state_dir: str = "runs/trading"  # the paper broker's durable state goes to <state_dir>/<run_id>.paper.json
    poll_seconds: float = 5.0  # how often a live source is asked for a newly closed bar
    exchange: ExchangeConfig = field(default_factory=ExchangeConfig)
    alerts: str = "default"  # alerts config (configs/alerts) of the monitors, Telegram and metrics
    faults: FaultConfig = field(default_factory=FaultConfig)

    def __post_init__(self) -> None:
        if not self.run_id or not self.run_id.replace("-", "").replace("_", "").isalnum():
            raise DataError(f"run_id must be letters, digits, '-' or '_', got {self.run_id!r}")
        if self.poll_seconds <= 0:
            raise DataError(f"poll_seconds must be positive, got {self.poll_seconds}")
        if self.initial_cash is not None and not self.initial_cash > 0:
            raise DataError(f"initial_cash must be positive, got {self.initial_cash}")

    @property
    def stream(self) -> str:
        return self.stream_id or self.run_id

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> ExecutionConfig:
        return from_dict(cls, values or {}, "execution")

    @classmethod
    def load(cls, spec: str | Path = "paper") -> ExecutionConfig:
        """A name in configs/execution ('paper') or a path to a YAML file."""
        return cls.from_dict(read_yaml(spec, EXECUTION_CONFIGS, "execution"))
