"""Tiny real training runs on the bundled Binance BTC 1h bars, for the serving tests, benchmark and demos.

One training iteration of a few hundred environment steps on four months of data: the
checkpoints are real (trained on real bars, saved by the training entry point with the run folder
inference needs), just small and quick to make.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

DATA_SPAN = ("data.start=2022-05-01", "data.end=2022-09-01", "data.validation_days=20")
MODEL_OPTIONS: dict[str, tuple[str, ...]] = {
    "mlp": ("model.hidden=[32,32]",),
    "cnn": ("model.hidden=[32]", "model.options.conv_channels=[8,8]"),
    "lstm": ("model.hidden=[32]", "model.options.lstm_cell_size=16"),
    "attention": (
        "model.hidden=[32]",
        "model.options.d_model=16",
        "model.options.num_heads=2",
        "model.options.num_layers=1",
        "model.options.ff_dim=32",
    ),
}
ALGO_OPTIONS: dict[str, tuple[str, ...]] = {
    "ppo": ("algo.train_batch_size=256", "algo.minibatch_size=64", "algo.num_epochs=1"),
    "a2c": ("algo.train_batch_size=256",),
    "dqn": (
        "algo.train_batch_size=256",
        "algo.minibatch_size=32",
        "algo.learning_starts=64",
        "algo.replay_capacity=2000",
    ),
}


def tiny_overrides(
    run_dir: Path,
    name: str,
    algo: str = "ppo",
    model: str = "mlp",
    seed: int = 0,
    extra: tuple[str, ...] = (),
) -> list[str]:
    return [
        "data=binance_btc_1h",
        "features=minimal",
        f"algo={algo}",
        f"model={model}",
        f"seed={seed}",
        *DATA_SPAN,
        *ALGO_OPTIONS[algo],
        *MODEL_OPTIONS[model],
        "train.iterations=1",
        "train.eval_every=1",
        "train.validation_baselines=false",
        "train.report=false",
        f"train.run_name={name}",
        f"run_dir={run_dir}",
        *extra,
    ]


def train_tiny(
    run_dir: Path,
    name: str,
    algo: str = "ppo",
    model: str = "mlp",
    seed: int = 0,
    extra: tuple[str, ...] = (),
) -> Path:
    """Train one tiny run (Ray must be up or startable) and return its folder."""
    from rl.train_cli import run_training

    outcome = run_training(tiny_overrides(run_dir, name, algo, model, seed, extra))
    return Path(outcome.run.path)


def train_ensemble(run_dir: Path, specs: tuple[tuple[Any, ...], ...]) -> dict[str, Path]:
    """Runs ``(name, algo, model, seed[, overrides])`` in ``run_dir``, reusing those already finished."""
    runs: dict[str, Path] = {}
    for name, algo, model, seed, *extra in specs:
        folder = run_dir / name
        done = (folder / "checkpoints" / "best").is_dir()
        overrides = tuple(extra[0]) if extra else ()
        runs[name] = folder if done else train_tiny(run_dir, name, algo, model, seed, overrides)
    return runs
