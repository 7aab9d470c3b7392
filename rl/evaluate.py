"""The out-of-sample verdict on a trained agent: the validation span, next to buy-and-hold and every baseline.

Every policy runs through the same environment settings (fees and slippage on) over the same
bars; learned baselines are fitted on the training span only.  The result goes to
``evaluation.json`` next to the checkpoint, a markdown table, and a report folder.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import pandas as pd

from rl.backtest import BENCHMARK, jsonable, metrics_table, run_all
from rl.baselines import BASELINES, applicable, make_baseline
from rl.builders import PreparedData, env_config
from rl.policy import Policy
from rl.runs import RunFolder, write_json_atomic
from rl.tracking import log_metrics

if TYPE_CHECKING:
    from rl.config import TrainConfig

log = logging.getLogger("mft.evaluate")
HEADLINE = ("total_return", "annual_return", "sharpe", "sortino", "max_drawdown", "calmar", "win_rate",
            "n_trades", "exposure", "turnover")


def baseline_policies(data: PreparedData) -> dict[str, Policy]:
    """Every baseline that applies to these instruments, learned ones fitted on the training span."""
    policies: dict[str, Policy] = {}
    for name, spec in BASELINES.items():
        if name == BENCHMARK or not applicable(name, data.validation):
            continue
        policies[name] = make_baseline(name, train_panel=data.train if spec.learned else None)
    return policies


def headline_table(table: pd.DataFrame) -> str:
    """The comparison as markdown, policies as rows, the metrics people read first as columns."""
    rows = table.T[[m for m in HEADLINE if m in table.index]]
    return rows.to_markdown(floatfmt=".3f")


def evaluate_run(agent: Policy, data: PreparedData, config: TrainConfig, run: RunFolder) -> dict[str, Any]:
    policies: dict[str, Policy] = {agent.name: agent}
    if config.train.validation_baselines:
        policies |= baseline_policies(data)
    history = data.train
    results = run_all(policies, data.validation, env_config(config.env, "eval"), data.timeframe, history=history)
    table = metrics_table(results)
    evaluation: dict[str, Any] = {
        "agent": agent.name,
        "span": {"start": str(results[agent.name].equity.index[0]), "end": str(results[agent.name].equity.index[-1]),
                 "bars": len(results[agent.name].equity) - 1},
        "metrics": {name: jsonable(dict(result.metrics)) for name, result in results.items()},
    }
    write_json_atomic(run.best / "evaluation.json", evaluation)
    write_json_atomic(run.path / "evaluation.json", evaluation)
    markdown = headline_table(table)
    (run.path / "comparison.md").write_text(markdown + "\n")
    log_metrics(dict(results[agent.name].metrics), prefix="final.")
    if config.train.report:
        write_agent_report(run, results, agent.name, data)
        table.to_csv(run.report / "comparison_all.csv")
    print(f"\nValidation {evaluation['span']['start'][:10]} .. {evaluation['span']['end'][:10]} "
          f"({evaluation['span']['bars']:,} bars, fees and slippage on):\n{markdown}\n", flush=True)
    return evaluation


def write_agent_report(run: RunFolder, results: dict[str, Any], agent: str, data: PreparedData) -> None:
    from rl.evaluation.reports import write_report

    main, benchmark = results[agent], results[BENCHMARK]
    close = data.validation.close[-len(main.equity):, 0]
    prices = pd.Series(close, index=main.equity.index, name=data.validation.instruments[0])
    write_report(run.report, main.equity, main.timeframe, benchmark=benchmark.equity, prices=prices,
                 ledger=main.trades_ledger, positions=main.positions.abs().sum(axis=1).to_list(),
                 title=f"{agent} on the validation span", names=(agent, "buy and hold"))
