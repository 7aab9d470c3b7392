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
class ExecutionConfig:
    """One trading process: paper or live, its journal and its risk limits."""

    mode: Literal["paper", "live"] = "paper"  # paper trades against a simulated broker
    run_id: str = "paper"  # part of every client order id, so two runs never collide on an exchange
    journal: JournalConfig = field(default_factory=JournalConfig)
    risk: RiskLimits = field(default_factory=RiskLimits)

    def __post_init__(self) -> None:
        if not self.run_id or not self.run_id.replace("-", "").replace("_", "").isalnum():
            raise DataError(f"run_id must be letters, digits, '-' or '_', got {self.run_id!r}")

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> ExecutionConfig:
        return from_dict(cls, values or {}, "execution")

    @classmethod
    def load(cls, spec: str | Path = "paper") -> ExecutionConfig:
        """A name in configs/execution ('paper') or a path to a YAML file."""
        return cls.from_dict(read_yaml(spec, EXECUTION_CONFIGS, "execution"))
