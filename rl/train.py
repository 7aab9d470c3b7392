"""Train an agent on real market data: ``python -m rl.train algo=ppo model=attention data=binance_btc_1h``.

It reads top to bottom:

1. resolve the Hydra config (``configs/config.yaml``) into typed dataclasses and write it to the run folder;
2. load the data, build causal features, split off the last ``data.validation_days`` as validation;
3. join a Ray cluster (``train.ray_address`` or ``RAY_ADDRESS``) or start a local Ray;
4. build the RLlib algorithm (PPO, A2C or DQN with our RLModule) on the training span, or restore it;
5. loop: train one iteration; every ``train.eval_every`` iterations run the greedy policy over the
   validation span (fees and slippage on), checkpoint, keep the best by validation Sharpe, stop early
   after ``train.patience`` evaluations without improvement;
6. evaluate the best checkpoint on the validation span next to buy-and-hold and the baselines and
   write ``evaluation.json`` and a report next to the checkpoint.

Everything is tracked in MLflow (``rl/tracking.py``). A killed run continues with
``train.resume=runs/<name>``.
"""

from __future__ import annotations

import copy
import logging
import os
import random
import time
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
import yaml
from omegaconf import DictConfig, OmegaConf

from rl.builders import PreparedData, algorithm_config, env_config, env_values, prepare_data, seed_replay_buffer
from rl.config import TrainConfig
from rl.module_policy import ModulePolicy
from rl.runs import RunFolder, RunState, write_json_atomic
from rl.tracking import log_metrics, tracked_run

log = logging.getLogger("mft.train")


@dataclass
class TrainOutcome:
    run: RunFolder
    state: RunState
    evaluation: dict[str, Any]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def quiet() -> None:
    """Training should print its progress lines, not a wall of library warnings."""
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*Overriding environment.*")
    for name in ("ray", "ray.rllib", "ray.tune", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)


def init_ray(config: TrainConfig) -> None:
    """Join an existing cluster without claiming CPUs, or start a local Ray sized by train.num_cpus."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():
        return
    address = config.train.ray_address or os.environ.get("RAY_ADDRESS")
    if address:
        # A cluster's resources are its own: joining must not claim CPUs.
        ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
    else:
        ray.init(num_cpus=config.train.num_cpus, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.ERROR)
    quiet()  # Ray resets its loggers when it starts


def run_folder(config: TrainConfig) -> RunFolder:
    if config.train.resume:
        return RunFolder(Path(config.train.resume))
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    name = config.train.run_name or f"{config.algo.name}-{config.model.name}-{Path(config.data.name).stem}-{stamp}"
    return RunFolder(Path(config.run_dir) / name).create()


def save_run_inputs(run: RunFolder, raw: dict[str, Any], data: PreparedData, config: TrainConfig) -> None:
    """What inference needs to rebuild the inputs exactly as in training."""
    (run.path / "config.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    data.pipeline.save(run.path / "features.json")
    if data.selection is not None:
        data.selection.save(run.path / "selection.json")
    write_json_atomic(run.path / "env.json", env_values(config.env, "eval"))
    write_json_atomic(run.path / "data.json", {
        "name": config.data.name, "symbols": config.data.symbols, "gap_policy": config.data.gap_policy,
        "timeframe": data.timeframe, "validation_start": data.validation_start.isoformat(),
        "instruments": list(data.panel.instruments), "feature_names": list(data.panel.feature_names),
    })


def validate(module: Any, data: PreparedData, config: TrainConfig) -> dict[str, Any]:
    """Greedy policy over the whole validation span, costs on: the out-of-sample metrics."""
    from rl.backtest import backtest

    policy = ModulePolicy(copy.deepcopy(module), name="agent")
    return backtest(policy, data.validation, env_config(config.env, "eval"), data.timeframe).metrics


def iteration_line(state: RunState, total: int, result: dict[str, Any], seconds: float, val: str) -> str:
    episode_return = result.get("env_runners", {}).get("episode_return_mean", float("nan"))
    return (f"iter {state.iteration:>3}/{total}  env steps {state.env_steps:>8,}  "
            f"episode return {episode_return:+.4f}  {val}  {seconds:5.1f}s")


def train_loop(algo: Any, run: RunFolder, state: RunState, data: PreparedData, config: TrainConfig) -> RunState:
    loop = config.train
    while state.iteration < loop.iterations and not state.stopped_early:
        started = time.perf_counter()
        result = algo.train()
        state.iteration += 1
        state.env_steps = int(result.get("num_env_steps_sampled_lifetime", state.env_steps))
        train_metrics = {"episode_return_mean": result.get("env_runners", {}).get("episode_return_mean"),
                         "env_steps": state.env_steps}
        log_metrics(train_metrics, step=state.iteration, prefix="train.")
        validation = ""
        if state.iteration % loop.eval_every == 0 or state.iteration == loop.iterations:
            metrics = validate(algo.get_module(), data, config)
            log_metrics(metrics, step=state.iteration, prefix="val.")
            state.history.append({"iteration": state.iteration, "env_steps": state.env_steps, **metrics})
            improved = checkpoint(algo, run, state, metrics["sharpe"], config)  # saves the state with it
            validation = (f"val sharpe {metrics['sharpe']:+.2f} return {metrics['total_return']:+.1%}"
                          f"{' *' if improved else '  '}")
        print(iteration_line(state, loop.iterations, result, time.perf_counter() - started, validation), flush=True)
    return state


def checkpoint(algo: Any, run: RunFolder, state: RunState, sharpe: float, config: TrainConfig) -> bool:
    """Save this iteration; record it as best if validation Sharpe improved by min_delta."""
    folder = run.checkpoint_dir(state.iteration)
    algo.save_to_path(str(folder.resolve()))
    state.last_checkpoint = folder.name
    improved = state.best_sharpe is None or sharpe > state.best_sharpe + config.train.min_delta
    if improved:
        state.best_sharpe, state.best_iteration, state.best_checkpoint = sharpe, state.iteration, folder.name
        state.evaluations_without_improvement = 0
    else:
        state.evaluations_without_improvement += 1
        state.stopped_early = state.evaluations_without_improvement >= config.train.patience
    run.save_state(state)  # only now does the run point at the new checkpoint
    run.prune(state)
    return improved


def final_evaluation(run: RunFolder, state: RunState, data: PreparedData, config: TrainConfig) -> dict[str, Any]:
    """The best checkpoint on the validation span, next to buy-and-hold and every applicable baseline."""
    from rl.evaluate import evaluate_run

    best = run.publish_best(state)
    return evaluate_run(ModulePolicy.from_checkpoint(best, name=f"{config.algo.name}-{config.model.name}"),
                        data, config, run)


def train(config: TrainConfig, raw: dict[str, Any]) -> TrainOutcome:
    quiet()
    seed_everything(config.seed)
    run = run_folder(config)
    state = run.load_state()
    data = prepare_data(config)
    save_run_inputs(run, raw, data, config)
    print(f"run {run.path}: {', '.join(data.panel.instruments)} {data.timeframe}, "
          f"{data.train.n_bars:,} training bars, validation from {data.validation_start:%Y-%m-%d} "
          f"({data.validation.n_bars - int(config.env.get('window', 32)):,} bars), "
          f"{len(data.panel.feature_names)} features", flush=True)
    init_ray(config)
    algo = algorithm_config(config.algo, config.model, config.train, config.env, data.train, config.seed).build_algo()
    seed_replay_buffer(algo, config.seed)
    if state.last_checkpoint:
        algo.restore_from_path(str((run.checkpoints / state.last_checkpoint).resolve()))
        print(f"resumed from {state.last_checkpoint} (iteration {state.iteration})", flush=True)
    with tracked_run(run.path.parent, config.train.experiment, run.path.name, raw,
                     run_id=state.mlflow_run_id) as mlrun:
        state.mlflow_run_id = mlrun.info.run_id
        run.save_state(state)
        try:
            state = train_loop(algo, run, state, data, config)
        finally:
            algo.stop()
        evaluation = final_evaluation(run, state, data, config)
        state.finished = True
        run.save_state(state)
    return TrainOutcome(run, state, evaluation)


@hydra.main(config_path="../configs", config_name="config", version_base=None)
def main(cfg: DictConfig) -> None:
    raw = {str(k): v for k, v in dict(OmegaConf.to_container(cfg, resolve=True)).items()}  # type: ignore[arg-type]
    train(TrainConfig.from_dict(raw), raw)


if __name__ == "__main__":
    main()
