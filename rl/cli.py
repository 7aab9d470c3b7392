"""`mft backtest` and `mft compare`: any policy, any OHLCV data, the same costs and span for all.

``--policy`` is a baseline name (``rl.baselines.BASELINES``) or the path of a training run or RLlib
checkpoint, loaded by ``rl.artifacts.load_agent`` with the feature pipeline and environment it was
trained with.  Baselines get features from ``--features`` (default ``minimal``) and the
environment of ``--env`` (default ``configs/env/default.yaml``).  The evaluation span is
``[--start, --end)``; without ``--start`` it is the last ``--validation-days`` of the data.  Learned
baselines train on every bar before the span.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from envs import EnvConfig, FeeSchedule
from features.data.cli import parse_date
from features.data.registry import load_dataset
from features.data.schema import DataError, Dataset
from features.data.splits import DEFAULT_VALIDATION_DAYS, train_validation_split
from features.panel import FeaturePanel
from features.pipeline import FeaturePipeline
from features.pipeline.config import CONFIG_ROOT
from features.pipeline.selection import train_split
from rl.backtest import (
    BENCHMARK,
    BacktestResult,
    backtest,
    evaluation_panel,
    history_before,
    jsonable,
    metrics_table,
)
from rl.baselines import BASELINES, applicable, is_learned, make_baseline
from rl.policy import Policy

DEFAULT_ENV = CONFIG_ROOT / "env" / "default.yaml"


@dataclass
class Setup:
    """The inputs of one kind of policy: its features over the whole data, environment and bar length."""

    panel: FeaturePanel
    env_config: EnvConfig
    timeframe: str


@dataclass(frozen=True)
class Span:
    start: datetime
    end: datetime | None


def env_config_from(path: str | Path | None) -> EnvConfig:
    """Environment settings from a YAML file like configs/env/default.yaml (``fee`` sets every fee)."""
    source = Path(path) if path else DEFAULT_ENV
    if not source.exists():
        if path:
            raise DataError(f"{source}: no such environment config")
        return EnvConfig()
    values = dict(yaml.safe_load(source.read_text()) or {})
    fee = values.pop("fee", None)
    config = EnvConfig.from_dict(values)
    return with_costs(config, fee=fee) if fee is not None else config


def with_costs(config: EnvConfig, *, fee: float | None = None, slippage_bps: float | None = None) -> EnvConfig:
    """``fee``: maker and taker fee of every exchange (minimum order sizes kept); ``slippage_bps``: fixed slippage."""
    costs = config.costs
    if fee is not None:
        costs = dataclasses.replace(
            costs,
            default_fees=FeeSchedule(fee, fee, costs.default_fees.min_order_notional),
            fees={venue: FeeSchedule(fee, fee, s.min_order_notional) for venue, s in costs.fees.items()},
        )
    if slippage_bps is not None:
        costs = dataclasses.replace(costs, slippage_bps=slippage_bps)
    return dataclasses.replace(config, costs=costs)


def evaluation_span(args: argparse.Namespace, dataset: Dataset) -> Span:
    end = parse_date(args.end) if args.end else None
    if args.start:
        return Span(parse_date(args.start), end)
    return Span(train_validation_split(dataset, args.validation_days, end).cut, end)


def baseline_setup(args: argparse.Namespace, dataset: Dataset, env_config: EnvConfig | None = None) -> Setup:
    pipeline = FeaturePipeline.from_config(args.features)
    if pipeline.config.normalisation.method == "fitted":
        raise DataError("baselines need features without fitted statistics: use a config with normalisation "
                        "method rolling or none")
    panel = pipeline.panel(dataset)
    config = env_config or with_costs(env_config_from(args.env), fee=args.fee, slippage_bps=args.slippage_bps)
    return Setup(panel, config, panel.keys[0].timeframe)


def load_trained(path: str, args: argparse.Namespace, dataset: Dataset) -> tuple[Policy, Setup]:
    """A trained agent with its features built exactly as in training, and its environment."""
    try:
        from rl.artifacts import load_agent
    except ImportError as err:
        raise DataError(f"cannot load trained agent {path}: rl.artifacts is not available ({err})") from err
    agent = load_agent(path)
    panel = agent.panel(dataset)  # the run's fitted pipeline and feature selection, checked against the model
    config = with_costs(agent.env_config, fee=args.fee, slippage_bps=args.slippage_bps)
    return agent.policy, Setup(panel, config, agent.timeframe)


def run_on_span(policy: Policy, setup: Setup, span: Span, name: str) -> BacktestResult:
    window = setup.env_config.window
    panel = evaluation_panel(setup.panel, span.start, span.end, window)
    history = history_before(setup.panel, span.start, window)
    return backtest(policy, panel, setup.env_config, setup.timeframe, history=history, name=name)


def baseline(name: str, params: Mapping[str, Any] | None, setup: Setup, span: Span) -> Policy:
    """Baseline ``name``; a learned one fits on the panel rows before the span."""
    train = train_split(setup.panel, span.start) if is_learned(name) else None
    return make_baseline(name, params, train)


def _params(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"--params must be a JSON object, e.g. '{{\"fast\": 20}}': {err}") from err
    if not isinstance(value, dict):
        raise DataError(f"--params must be a JSON object, got {text!r}")
    return value


def _policy_and_setup(args: argparse.Namespace, dataset: Dataset, span: Span) -> tuple[str, Policy, Setup]:
    if args.policy in BASELINES:
        setup = baseline_setup(args, dataset)
        return args.policy, baseline(args.policy, _params(args.params), setup, span), setup
    if not Path(args.policy).exists():
        raise DataError(f"--policy {args.policy!r} is neither a baseline ({', '.join(BASELINES)}) nor a path")
    policy, setup = load_trained(args.policy, args, dataset)
    return getattr(policy, "name", Path(args.policy).name), policy, setup


def _span_info(result: BacktestResult) -> dict[str, Any]:
    index = result.equity.index
    return {"timeframe": result.timeframe, "start": index[1].isoformat() if len(index) > 1 else None,
            "end": index[-1].isoformat(), "bars": len(index) - 1}


def cmd_backtest(args: argparse.Namespace) -> int:
    dataset = load_dataset(args.data, symbols=args.symbols).dataset
    span = evaluation_span(args, dataset)
    name, policy, setup = _policy_and_setup(args, dataset, span)
    result = run_on_span(policy, setup, span, name)
    bench = run_on_span(make_baseline(BENCHMARK), setup, span, BENCHMARK)
    if args.json:
        payload = {"policy": name, "data": str(args.data), **_span_info(result), **result.metrics,
                   BENCHMARK: bench.metrics}
        print(json.dumps(jsonable(payload)))
    else:
        info = _span_info(result)
        print(f"{name} on {args.data}: {info['bars']:,} {info['timeframe']} bars, {info['start']} .. {info['end']}")
        print(metrics_table({name: result, BENCHMARK: bench}).to_markdown(floatfmt=".4f"))
    if args.report:
        write(args.report, result, bench, setup, not args.no_tearsheet)
    return 0


def write(directory: str, result: BacktestResult, bench: BacktestResult, setup: Setup, tearsheet: bool) -> None:
    from rl.evaluation.reports import write_report

    prices = None
    if result.positions.shape[1] == 1:
        close = setup.panel.close[:, 0]
        stamps = pd.DatetimeIndex(setup.panel.timestamps).tz_localize("UTC")
        prices = pd.Series(close, index=stamps).reindex(result.equity.index)
    report = write_report(directory, result.equity, result.timeframe, benchmark=bench.equity, prices=prices,
                          ledger=result.trades_ledger, positions=list(result.exposure),
                          title=f"{result.name} backtest", names=(result.name, "buy and hold"), tearsheet=tearsheet)
    print(f"report written to {report.directory}")


def _baseline_names(choice: str, panel: FeaturePanel) -> list[str]:
    if choice == "none":
        return []
    names = list(BASELINES) if choice == "all" else [n.strip() for n in choice.split(",") if n.strip()]
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        raise DataError(f"unknown baseline(s) {unknown}; known: {', '.join(BASELINES)}")
    return [n for n in names if applicable(n, panel) or choice != "all"]


def compare_results(args: argparse.Namespace, dataset: Dataset) -> dict[str, BacktestResult]:
    """Agents from ``--policy`` paths, then baselines, all on the same span; buy-and-hold first."""
    span = evaluation_span(args, dataset)
    agents = [load_trained(path, args, dataset) for path in args.policy or []]
    setup = baseline_setup(args, dataset, agents[0][1].env_config if agents else None)
    results = {BENCHMARK: run_on_span(make_baseline(BENCHMARK), setup, span, BENCHMARK)}
    for path, (policy, agent_setup) in zip(args.policy or [], agents, strict=True):
        name = getattr(policy, "name", Path(path).name)
        results[name if name not in results else f"{name} ({path})"] = run_on_span(policy, agent_setup, span, name)
    for name in _baseline_names(args.baselines, setup.panel):
        if name != BENCHMARK:
            results[name] = run_on_span(baseline(name, None, setup, span), setup, span, name)
    return results


def cmd_compare(args: argparse.Namespace) -> int:
    dataset = load_dataset(args.data, symbols=args.symbols).dataset
    results = compare_results(args, dataset)
    table = metrics_table(results)
    info = _span_info(results[BENCHMARK])
    print(f"{args.data}: {info['bars']:,} {info['timeframe']} bars, {info['start']} .. {info['end']}")
    print(table.to_markdown(floatfmt=".4f"))
    if args.csv:
        Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.csv)
        print(f"table written to {args.csv}")
    return 0


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True,
                        help="a bundled dataset name (see `mft data list`), a file or a folder")
    parser.add_argument("--symbols", nargs="+", help="keep only these series, e.g. BTC/USDT ETH/USDT")
    parser.add_argument("--features", default="minimal", help="feature config of the baselines (configs/features)")
    parser.add_argument("--env", help="environment YAML of the baselines (default configs/env/default.yaml)")
    parser.add_argument("--fee", type=float, help="maker and taker fee of every exchange, e.g. 0.001 = 0.1%%")
    parser.add_argument("--slippage-bps", type=float, help="fixed slippage in basis points")
    parser.add_argument("--start", help="first evaluated bar (YYYY-MM-DD or ISO time, UTC)")
    parser.add_argument("--end", help="end of the evaluation, exclusive (default: end of the data)")
    parser.add_argument("--validation-days", type=float, default=DEFAULT_VALIDATION_DAYS,
                        help="without --start, evaluate the last this many days (default %(default)s)")


def register_backtest(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("backtest", help="backtest an agent or a baseline on any OHLCV data")
    parser.add_argument("--policy", required=True, help=f"a baseline ({', '.join(BASELINES)}) or a run/checkpoint path")
    _add_common(parser)
    parser.add_argument("--params", help="baseline parameters as JSON, e.g. '{\"fast\": 20, \"slow\": 100}'")
    parser.add_argument("--json", action="store_true", help="print one JSON object of metrics")
    parser.add_argument("--report", help="write a report directory (plots, tear sheet, metrics.json)")
    parser.add_argument("--no-tearsheet", action="store_true", help="skip the QuantStats tear sheet in --report")
    parser.set_defaults(func=cmd_backtest)


def register_compare(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("compare", help="agents and baselines side by side on the same span")
    parser.add_argument("--policy", nargs="*", help="run/checkpoint paths of trained agents")
    parser.add_argument("--baselines", default="all", help="all, none, or a comma-separated list of names")
    _add_common(parser)
    parser.add_argument("--csv", help="also write the table as CSV")
    parser.set_defaults(func=cmd_compare)
