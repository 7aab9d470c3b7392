"""`mft train ...` and `mft demo`: the training entry point and the README's main job.

``mft train algo=dqn model=lstm data=binance_btc_1h`` takes exactly the Hydra overrides that
``python -m rl.train`` takes and composes the same ``configs/`` tree.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from tabulate import tabulate

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
DEMO_OVERRIDES = ("data=binance_btc_1h", "features=minimal", "algo=ppo", "model=mlp", "train=quick",
                  "train.run_name=demo")


def compose_config(overrides: list[str]) -> dict[str, Any]:
    """The resolved config for these overrides, as plain data (what the run logs and stores)."""
    with initialize_config_dir(config_dir=str(CONFIGS), version_base=None):
        cfg = compose(config_name="config", overrides=overrides)
    container = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(container, dict)
    return {str(k): v for k, v in container.items() if k != "hydra"}


def run_training(overrides: list[str]) -> Any:
    from rl.config import TrainConfig
    from rl.train import train

    raw = compose_config(overrides)
    return train(TrainConfig.from_dict(raw), raw)


def cmd_train(args: argparse.Namespace) -> int:
    run_training(list(args.overrides))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Train a small PPO agent on bundled BTC 1h, evaluate it out of sample next to the baselines."""
    from features.data.cli import summarise
    from features.data.registry import load_dataset

    overrides = [*DEMO_OVERRIDES, f"run_dir={args.run_dir}", *args.overrides]
    data_name = compose_config(overrides)["data"]["name"]
    loaded = load_dataset(data_name)
    print(f"## Data: {data_name}, validated in {loaded.seconds * 1000:.0f} ms")
    print(tabulate(summarise(loaded.dataset, loaded.reports), headers="keys", tablefmt="github"), "\n")
    outcome = run_training(overrides)
    print(f"Report: {outcome.run.report}/report.html (tear sheet: {outcome.run.report}/tearsheet.html)")
    print(f"Best checkpoint: {outcome.run.best} (validation Sharpe {outcome.state.best_sharpe:+.2f}, "
          f"iteration {outcome.state.best_iteration})")
    print(f"Compare runs: mlflow ui --backend-store-uri sqlite:///{Path(args.run_dir).resolve()}/mlflow.db")
    return 0


def register_train(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train an agent (Hydra overrides, e.g. algo=dqn model=lstm)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of configs/config.yaml")
    parser.set_defaults(func=cmd_train)


def register_demo(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="the main job: train, backtest against baselines, report")
    parser.add_argument("--run-dir", default="runs", help="where the run folder and MLflow store go")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides, e.g. train.iterations=4")
    parser.set_defaults(func=cmd_demo)
