"""``mft trade``: paper (default) or live trading, or a replay of stored data through the whole stack.

::

    mft trade --policy runs/demo                       paper trading on live exchange bars (Ctrl-C stops)
    mft trade --policy runs/demo --live --config live  real orders: needs mode: live in the config too,
                                                       and MFT_<EXCHANGE>_API_KEY / _API_SECRET set
    mft trade --policy runs/demo --replay binance_btc_1h --start 2022-08-15 --end 2022-09-01
                                                       actor + policy service + paper broker over stored
                                                       bars; prints the replay next to `mft backtest`

A replay starts its own policy service for the run unless ``--serve-url`` names one, journals to
``--out`` (default ``runs/replays/<policy>-<start>``), and ends with a table of the replay's metrics,
the backtest's of the same policy on the same span, and buy-and-hold; equal figures are the parity
that lets you trust live behaving like the backtest.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from features.data.cli import parse_date
from features.data.schema import DataError


def start_policy_service(policy: str, port: int | None = None) -> str:
    """The run as a one-member ensemble on 127.0.0.1; returns its URL."""
    from serve.app import start
    from serve.config import ServeConfig
    from serve.http_proxy import free_port

    port = port or free_port()
    start(ServeConfig.from_dict({"port": port, "request_timeout_s": 60.0,
                                 "ensembles": {"main": {"members": [{"source": str(Path(policy).resolve())}]}}}))
    return f"http://127.0.0.1:{port}"


def execution_config(args: argparse.Namespace) -> Any:
    from serve.execution.config import ExecutionConfig

    config = ExecutionConfig.load(args.config)
    changes: dict[str, Any] = {"policy_run": args.policy or config.policy_run}
    if args.run_id:
        changes["run_id"] = args.run_id
    if args.serve_url:
        changes["serve_url"] = args.serve_url
    if args.alerts:
        changes["alerts"] = args.alerts
    if args.no_risk_limits:
        from serve.execution.risk import RiskLimits

        changes["risk"] = RiskLimits()  # what a backtest measures: no limit, no kill switch
    if args.replay:
        out = Path(args.out or f"runs/replays/{Path(args.policy).name}-{args.start}")
        if (out / "journal.db").exists() and not args.resume:
            raise DataError(f"{out} already holds a replay journal: pass --resume to continue it or --out DIR")
        out.mkdir(parents=True, exist_ok=True)
        changes |= {"journal": dataclasses.replace(config.journal, url=f"sqlite:///{out / 'journal.db'}"),
                    "state_dir": str(out), "mode": "paper"}
    elif args.journal:
        changes["journal"] = dataclasses.replace(config.journal, url=args.journal)
    return dataclasses.replace(config, **changes)


def cmd_trade(args: argparse.Namespace) -> int:
    import os

    from serve.execution.actor import ExecutionActor, ReplaySpec, start_actor

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if args.live and args.replay:
        raise DataError("--replay always trades on paper; drop --live")
    config = execution_config(args)
    replay = None
    if args.replay:
        if not args.start:
            raise DataError("--replay needs --start (the first bar traded, e.g. 2022-08-15)")
        end = parse_date(args.end) if args.end else None
        replay = ReplaySpec(args.replay, parse_date(args.start), end, tuple(args.symbols) if args.symbols else None)
        if not args.serve_url:
            config = dataclasses.replace(config, serve_url=start_policy_service(config.policy_run))
    print(f"trading {config.policy_run} ({'live' if args.live else 'paper'}), policy service {config.serve_url}, "
          f"journal {config.journal.url}", flush=True)
    started = time.perf_counter()
    if args.no_ray:
        actor = ExecutionActor(config, replay, args.live)
        summary = _run_local(actor, args.max_bars)
    else:
        summary = _run_actor(start_actor(config, replay, live=args.live), args.max_bars)
    print(f"{summary['bars']} bars, {summary['decisions']} decisions, {summary['orders']} orders, "
          f"{summary['fills']} fills, equity {summary['equity']:,.2f} in {time.perf_counter() - started:.1f} s")
    if replay is not None:
        from serve.execution.replay_report import replay_report

        report = replay_report(config, replay)
        print(report.markdown)
        Path(config.state_dir, "replay.json").write_text(json.dumps(report.payload, indent=1, default=str))
    return 0


def _run_local(actor: Any, max_bars: int | None) -> dict[str, Any]:
    try:
        return actor.run(max_bars)  # type: ignore[no-any-return]
    except KeyboardInterrupt:
        actor.stop()
        return dataclasses.asdict(actor.session.summary)
    finally:
        actor.close()


def _run_actor(actor: Any, max_bars: int | None) -> dict[str, Any]:
    import ray

    try:
        return ray.get(actor.run.remote(max_bars))  # type: ignore[no-any-return]
    except KeyboardInterrupt:
        ray.get(actor.stop.remote())
        return ray.get(actor.run.remote(0))  # type: ignore[no-any-return]
    finally:
        ray.get(actor.close.remote())
        ray.kill(actor)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("trade", help="paper or live trading, or a replay through the whole stack",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", help="the training run to trade (runs/<name>); default: policy_run of the config")
    parser.add_argument("--config", default="paper", help="execution config (configs/execution) or a YAML path")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--paper", action="store_true", help="trade on paper (the default)")
    mode.add_argument("--live", action="store_true", help="send real orders (also needs mode: live in the config)")
    parser.add_argument("--replay", metavar="DATA", help="replay a dataset (registry name or file) on paper")
    parser.add_argument("--symbols", nargs="+", help="keep only these series of the replayed data")
    parser.add_argument("--start", help="first bar traded by the replay (YYYY-MM-DD or ISO time, UTC)")
    parser.add_argument("--end", help="end of the replay, exclusive")
    parser.add_argument("--out", help="replay folder: journal, paper state, replay.json")
    parser.add_argument("--resume", action="store_true", help="continue the replay journal in --out")
    parser.add_argument("--serve-url", help="a running policy service (default: the config's; a replay starts one)")
    parser.add_argument("--run-id", help="part of every client order id and the journal's run")
    parser.add_argument("--journal", help="SQLAlchemy URL of the journal (default: the config's)")
    parser.add_argument("--alerts", help="alerts config (configs/alerts) or a YAML path")
    parser.add_argument("--max-bars", type=int, help="stop after this many bars")
    parser.add_argument("--no-risk-limits", action="store_true",
                        help="trade without the config's risk limits (a replay then equals the backtest)")
    parser.add_argument("--no-ray", action="store_true",
                        help="run the trading loop in this process, not in a Ray actor")
    parser.set_defaults(func=cmd_trade)
