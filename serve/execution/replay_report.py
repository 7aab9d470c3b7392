"""After ``mft trade --replay``: the replay's figures next to ``mft backtest`` of the same policy and buy-and-hold.

The replay ran the actor, the policy service and the paper broker over stored bars; the backtest
runs the same policy through the environment on the same span.  Equal equity curves and fills
are the evidence that the live stack trades what the backtest measured; the report gives the
largest differences, and every metric stands next to buy-and-hold on the same bars.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from features.data.registry import load_dataset
from serve.execution.config import ExecutionConfig
from serve.execution.journal import Journal


@dataclass(frozen=True)
class ReplayReport:
    markdown: str
    payload: dict[str, Any]


def journal_equity(journal: Journal) -> pd.Series:
    curve = journal.equity_curve()
    return pd.Series([v for _, v in curve], index=pd.DatetimeIndex([t for t, _ in curve]), name="replay")


def parity(replay: pd.Series, backtest: pd.Series, replay_fills: list[Any], backtest_fills: Any) -> dict[str, Any]:
    """Largest differences between the replay and the backtest (equity by bar time, fills in order)."""
    joined = pd.concat([replay.rename("replay"), backtest.rename("backtest")], axis=1)
    both = joined.dropna()
    prices = [(f.price, float(row["fill_price"])) for f, row in zip(replay_fills, backtest_fills.iter_rows(named=True),
                                                                    strict=False)]
    return {
        "bars_replay": int(replay.size), "bars_backtest": int(backtest.size), "bars_compared": len(both),
        "max_equity_difference": float(np.max(np.abs(both["replay"] - both["backtest"]))) if len(both) else None,
        "fills_replay": len(replay_fills), "fills_backtest": int(backtest_fills.height),
        "max_fill_price_difference": max((abs(a - b) for a, b in prices), default=0.0),
    }


def replay_report(config: ExecutionConfig, replay: Any) -> ReplayReport:
    from rl import cli as backtest_cli
    from rl.backtest import BENCHMARK, metrics_table
    from rl.baselines import make_baseline
    from rl.evaluation.metrics import compute_metrics

    dataset = load_dataset(replay.data, symbols=list(replay.symbols) if replay.symbols else None).dataset
    args = argparse.Namespace(fee=None, slippage_bps=None)
    policy, setup = backtest_cli.load_trained(config.policy_run, args, dataset)
    span = backtest_cli.Span(replay.start, replay.end)
    backtest = backtest_cli.run_on_span(policy, setup, span, "backtest")
    bench = backtest_cli.run_on_span(make_baseline(BENCHMARK), setup, span, BENCHMARK)
    with Journal(config.journal.url) as journal:
        equity = journal_equity(journal)
        fills = journal.fills()
        risk_events = journal.events("trading_state")
    equity.index = equity.index.tz_convert(None) if equity.index.tz is not None else equity.index
    backtest_equity = backtest.equity.copy()
    if getattr(backtest_equity.index, "tz", None) is not None:
        backtest_equity.index = backtest_equity.index.tz_convert(None)
    filled = backtest.ledger.filter(backtest.ledger["status"] == "filled")
    checks = parity(equity, backtest_equity, fills, filled)
    replay_metrics = dict(compute_metrics(equity.to_numpy(), setup.timeframe))
    replay_metrics["n_trades"] = float("nan")  # round trips are counted by the backtest's ledger only
    table = metrics_table({"replay": replay_metrics, "backtest": backtest, BENCHMARK: bench})
    lines = [table.to_markdown(floatfmt=".4f"), "",
             "parity: " + ", ".join(f"{k} {v}" for k, v in checks.items())]
    lines += [f"risk: {e.time.isoformat()} {e.detail.get('state')} ({e.detail.get('reason')})" for e in risk_events]
    payload = {
        "parity": checks,
        "risk_events": [e.detail for e in risk_events],
        "metrics": {"replay": replay_metrics, "backtest": backtest.metrics, BENCHMARK: bench.metrics},
    }
    return ReplayReport("\n".join(lines), payload)
