"""`mft tune run | report | export`: sweeps from the command line.

``mft tune run data=binance_btc_1h tune=tiny`` takes exactly the Hydra overrides that
``python -m tune.sweep`` takes (``configs/sweep.yaml``); ``mft tune report PATH`` rewrites the report
of an experiment folder; ``mft tune export PATH --top-k 3 [--retrain]`` writes the ensemble spec.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from rl.train_cli import CONFIGS


def compose_sweep(overrides: list[str]) -> dict[str, Any]:
    """The resolved configs/sweep.yaml for these overrides, as plain data."""
    with initialize_config_dir(config_dir=str(CONFIGS), version_base=None):
        cfg = compose(config_name="sweep", overrides=overrides)
    container = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(container, dict)
    return {str(k): v for k, v in container.items() if k != "hydra"}


def cmd_run(args: argparse.Namespace) -> int:
    from tune.sweep import run_sweep

    overrides = list(args.overrides)
    outcome = run_sweep(compose_sweep(overrides), overrides)
    best = outcome.report["best"]
    if best is not None:
        print(f"best {best['trial_id']}: objective {best['objective']:+.3f}, "
              f"overrides {' '.join(best['overrides'])}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from tune.sweep import report_sweep

    _, files = report_sweep(Path(args.path).resolve())
    print(files[1].read_text())
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from tune.export import export_ensemble

    target = export_ensemble(args.path, args.top_k, retrain_members=args.retrain, output=args.output,
                             overrides=args.overrides)
    print(f"ensemble spec: {target}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("tune", help="hyperparameter sweeps over walk-forward folds")
    actions = parser.add_subparsers(dest="tune_action", metavar="ACTION", required=True)
    run = actions.add_parser("run", help="run or resume a sweep (Hydra overrides of configs/sweep.yaml)")
    run.add_argument("overrides", nargs="*", help="e.g. data=binance_btc_1h tune=tiny tune.num_samples=20")
    run.set_defaults(func=cmd_run)
    report = actions.add_parser("report", help="rewrite a sweep's report (DSR, PBO) from its folder")
    report.add_argument("path", help="the experiment folder, e.g. runs/sweeps/sweep-20240101-120000")
    report.set_defaults(func=cmd_report)
    export = actions.add_parser("export", help="write the top-k trials as an ensemble spec for serving")
    export.add_argument("path", help="the experiment folder")
    export.add_argument("--top-k", type=int, default=3, help="members of the ensemble (default 3)")
    export.add_argument("--retrain", action="store_true", help="retrain each one on all training data")
    export.add_argument("--output", default=None, help="the spec's path (default <path>/ensemble.yaml)")
    export.add_argument("overrides", nargs="*", help="extra overrides for --retrain (train.iterations=40)")
    export.set_defaults(func=cmd_export)
