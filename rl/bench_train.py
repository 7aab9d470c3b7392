"""Training throughput of PPO with the MLP model: on BTC 1h, and on a trivial environment of the same shape.

Run ``python -m rl.bench_train`` (part of ``make bench``).  One process, no remote env runners or
learners (``num_env_runners=0``, ``num_learners=0``), the repository defaults: PPO with 2,048 env
steps per iteration, minibatches of 128, 4 epochs; MLP [128, 128]; window 32 over the 16
``minimal`` features; 0.1% fees, slippage and impact on; torch on one thread (``--threads``).
The rows take turns, one iteration each per round, for ``--iterations`` rounds after a warm-up
iteration; every figure is a median over the rounds, in env steps per second of the process's
CPU time, which other jobs on a shared machine barely change (wall-clock iteration rate last):

* **sampled**: the env runner's ``sample`` (env, observation connectors, module inference,
  episode bookkeeping), timed inside ``train()``;
* **trained**: the rest of the iteration: learner connectors with GAE, 4 epochs of minibatch
  updates, weight sync;
* **iteration**: whole ``train()`` iterations, sampled and trained.

The trivial environment returns the same observation vector of zeros and reward 0 at no cost, so
the difference to the BTC row is what the trading environment costs; the trivial row with a tiny
MLP shows RLlib's own floor, and the difference between the two trivial rows what the model costs.
The last row runs 8 vectorised environments in the one env runner (``num_envs_per_env_runner``),
which spreads RLlib's per-step overhead over a batch.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
import warnings
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from envs.bench import machine
from features.data.registry import load_dataset
from features.panel import FeaturePanel
from features.pipeline import FeaturePipeline
from rl.builders import algorithm_config
from rl.config import AlgoConfig, ModelConfig, TrainLoopConfig

DATASET, FEATURES = "binance_btc_1h", "minimal"
ENV_SETTINGS: dict[str, Any] = {"window": 32, "episode_length": 720, "fee": 0.001, "action": "discrete",
                                "reward": "log_return"}


class TrivialEnv(gym.Env[np.ndarray, int]):
    """Zero observations of a given size, ``Discrete(n)`` actions, reward 0, fixed-length episodes."""

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        config = config or {}
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (int(config["obs_dim"]),), np.float32)
        self.action_space = gym.spaces.Discrete(int(config.get("n_actions", 3)))
        self._episode_length = int(config.get("episode_length", 720))
        self._obs = np.zeros(self.observation_space.shape, np.float32)
        self._t = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None,
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._t = 0
        return self._obs, {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self._t += 1
        return self._obs, 0.0, False, self._t >= self._episode_length, {}


@dataclass(frozen=True)
class Throughput:
    sampled: float  # env steps per CPU second of the env runner alone
    trained: float  # env steps per CPU second of the learner
    iteration: float  # env steps per CPU second of whole iterations
    wall: float  # env steps per wall-clock second of whole iterations


def btc_panel() -> FeaturePanel:
    return FeaturePipeline.from_config(FEATURES).panel(load_dataset(DATASET).dataset)


def ppo_config(panel: FeaturePanel, hidden: list[int], trivial: bool, envs: int = 1) -> Any:
    """PPO with the repository defaults on the BTC panel, or on a trivial env with the same spaces."""
    loop = TrainLoopConfig(num_envs_per_env_runner=envs)
    config = algorithm_config(AlgoConfig("ppo"), ModelConfig("mlp", hidden=hidden), loop, ENV_SETTINGS, panel,
                              seed=0)
    if trivial:
        n = len(panel.keys)
        obs_dim = ENV_SETTINGS["window"] * len(panel.feature_names) * n + 2 * n + 2
        config.environment(TrivialEnv, env_config={"obs_dim": obs_dim, "n_actions": 1 + 2 * n,
                                                    "episode_length": ENV_SETTINGS["episode_length"]})
    return config


class SampleTimer:
    """Wraps an env runner's ``sample``: adds up the CPU time spent in it and the env steps it returned."""

    def __init__(self, runner: Any) -> None:
        self.sample, self.seconds, self.steps = runner.sample, 0.0, 0
        runner.sample = self

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        started = time.process_time()
        episodes = self.sample(*args, **kwargs)
        self.seconds += time.process_time() - started
        self.steps += sum(len(episode) for episode in episodes)
        return episodes


def timed_iteration(algo: Any, timer: SampleTimer) -> Throughput:
    timer.seconds, timer.steps = 0.0, 0
    wall, cpu = time.perf_counter(), time.process_time()
    algo.train()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    steps = timer.steps
    return Throughput(steps / timer.seconds, steps / (cpu - timer.seconds), steps / cpu, steps / wall)


def measure(configs: list[Any], rounds: int) -> list[Throughput]:
    """Median throughputs of each config over ``rounds`` iterations, after one warm-up iteration.

    The algorithms take turns, one iteration each per round, so a change of load on a shared machine
    hits every row alike.
    """
    algos = [config.build_algo() for config in configs]
    try:
        timers = []
        for algo in algos:
            algo.train()
            timers.append(SampleTimer(algo.env_runner))
        rates = [[timed_iteration(algo, timer) for algo, timer in zip(algos, timers, strict=True)]
                 for _ in range(rounds)]
    finally:
        for algo in algos:
            algo.stop()
    return [Throughput(*(statistics.median(getattr(row[i], name) for row in rates)
                         for name in ("sampled", "trained", "iteration", "wall")))
            for i in range(len(configs))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--iterations", type=int, default=5, help="timed iterations per row, after a warm-up")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (small networks: 1 is fastest)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    warnings.filterwarnings("ignore")
    import ray

    panel = btc_panel()
    ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    try:
        print(f"machine: {machine()}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
              f"ray {ray.__version__}")
        print(f"PPO, 2,048 env steps per iteration, minibatch 128, 4 epochs, num_env_runners=0; {DATASET} "
              f"{panel.n_bars:,} bars, window 32 x {len(panel.feature_names)} features; "
              f"median of {args.iterations}")
        rows = [("TradingEnv BTC 1h, MLP [128, 128]", [128, 128], False, 1),
                ("trivial env, MLP [128, 128]", [128, 128], True, 1),
                ("trivial env, MLP [8]", [8], True, 1),
                ("TradingEnv BTC 1h, MLP [128, 128], 8 envs", [128, 128], False, 8)]
        rates = measure([ppo_config(panel, hidden, trivial, envs) for _, hidden, trivial, envs in rows],
                        args.iterations)
        print(f"{'env steps per CPU second (wall clock: last column)':<42} {'sampled':>9} {'trained':>9} "
              f"{'iteration':>9} {'wall':>7}")
        for (label, *_), rate in zip(rows, rates, strict=True):
            print(f"{label:<42} {rate.sampled:>9,.0f} {rate.trained:>9,.0f} {rate.iteration:>9,.0f} "
                  f"{rate.wall:>7,.0f}")
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
