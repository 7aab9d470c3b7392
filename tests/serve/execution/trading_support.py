"""A run folder without a network, and a deterministic rule as the decider, for in-process trading tests.

The trading loop needs what a training run leaves behind (env.json, data.json, features.json);
the rule below stands in for the network so the tests need neither Ray nor a service.  The same
rule runs as a :class:`rl.policy.Policy` in the backtest, so replay and backtest can be compared.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from envs import EnvConfig
from features.data.registry import load_dataset
from features.data.schema import Dataset
from features.pipeline import FeaturePipeline
from rl.policy import Policy
from serve.execution.config import ExecutionConfig
from serve.execution.deciders import Decider, Decision
from serve.execution.journal import Journal
from serve.execution.paper_broker import PaperBroker
from serve.execution.session import TradingSession
from serve.execution.sources import ReplaySource
from serve.execution.spec import TradingSpec
from serve.execution.trader_hooks import TraderHooks

START = datetime(2022, 6, 1, tzinfo=UTC)
END = datetime(2022, 6, 8, tzinfo=UTC)  # one week of hourly bars: 168 decisions


def btc_dataset() -> Dataset:
    return load_dataset("binance_btc_1h").dataset


def write_run(folder: Path, dataset: Dataset, env: dict[str, Any] | None = None) -> Path:
    """A run folder with the minimal features and the default environment (no model: the rule decides)."""
    folder.mkdir(parents=True, exist_ok=True)
    pipeline = FeaturePipeline.from_config("minimal")
    pipeline.save(folder / "features.json")
    config = EnvConfig.from_dict({"mode": "eval", **(env or {})})
    values = json.loads(json.dumps(dataclasses.asdict(config), default=list))
    (folder / "env.json").write_text(json.dumps(values))
    panel = pipeline.panel(dataset)
    (folder / "data.json").write_text(json.dumps({
        "timeframe": dataset.keys[0].timeframe, "instruments": list(panel.instruments),
        "feature_names": list(panel.feature_names)}))
    return folder


class MomentumRule:
    """Buy after an up bar, sell after a down bar: a pure function of the observation's last feature row."""

    def __init__(self, spec: TradingSpec) -> None:
        self.size = len(spec.feature_names) * len(spec.keys)
        self.column = spec.feature_names.index("logret_1")
        self.window = spec.env_config.window

    def action(self, observation: np.ndarray) -> int:
        last_row = observation[(self.window - 1) * self.size:self.window * self.size]
        return 1 if last_row[self.column] > 0 else 2


class RuleDecider(Decider):
    def __init__(self, rule: MomentumRule) -> None:
        self.rule, self.calls = rule, 0

    def decide(self, stream_id: str, observation: np.ndarray) -> Decision:
        self.calls += 1
        return Decision(self.rule.action(observation), "rule@1", {"rule": "momentum"})


class RulePolicy(Policy):
    def __init__(self, rule: MomentumRule) -> None:
        self.rule = rule

    def _act(self, observation: np.ndarray) -> Any:
        return self.rule.action(observation)


def open_session(run: Path, workdir: Path, dataset: Dataset, *, hooks: TraderHooks | None = None,
                 config: dict[str, Any] | None = None, decider: Decider | None = None) -> TradingSession:
    """A session over the replay span, journaling to ``workdir`` (reopening it recovers)."""
    spec = TradingSpec.from_run(run)
    values = {"journal": {"url": f"sqlite:///{workdir / 'journal.db'}", "synchronous": "NORMAL"},
              "state_dir": str(workdir), "policy_run": str(run), **(config or {})}
    execution = ExecutionConfig.from_dict(values)
    source = ReplaySource(dataset, spec.keys, START, END)
    state = workdir / "paper.json"
    return TradingSession.open(
        execution, spec, source, decider or RuleDecider(MomentumRule(spec)),
        lambda rows, times: PaperBroker(spec.keys, spec.env_config, history=rows, times=times, state_path=state),
        journal=Journal(execution.journal.url, synchronous="NORMAL"), hooks=hooks)
