"""Synthetic markets with a known, exploitable signal: the tasks that prove the agents learn.

Each task is a :class:`~features.panel.FeaturePanel` builder plus an *oracle*, a simple rule that
knows how the market was made, run through the same trading environment (same window, fees,
slippage, discrete hold / buy-all / sell-all actions) as the agent.  A trained agent is scored by
the log growth of its net worth over a held-out span (another seed) against the oracle's.

* **Mean reversion** (:func:`mean_reversion_panel`): the log price is an Ornstein-Uhlenbeck
  process with a half-life of a few bars around a known mean.  Features: ``zscore`` (log price
  minus the log mean, in stationary standard deviations) and ``return`` (the last log return in
  the same unit).  Expected next-bar return is ``-(1 - phi) * zscore`` stationary deviations, so
  being long below the mean pays; :func:`mean_reversion_oracle` buys when ``zscore`` is below
  ``enter`` and sells when it rises above ``exit``.
* **Memory** (:func:`memory_panel`): a ``cue`` feature is 1 at one bar and 0 otherwise; ``delay``
  bars after the cue the price jumps up by ``jump``.  It first falls by as much: half on the cue
  bar, half on the bar after it.  :func:`memory_oracle` buys at the close ``delay - 1`` bars
  after the cue and sells after the jump.  An LSTM reads one bar per step, so it has to carry
  the cue in its state; an attention model sees the cue inside its window (keep ``window >=
  delay``), never in the newest row at the decision.

  The portfolio state (position, time since the last fill) is a memory too, written by trading.
  The task makes it cost about half the jump (:func:`memoryless_references`): a policy that
  forgets the cue either holds before it and takes the fall on the cue bar (selling at the cue
  starts the fill clock), or buys at the cue and takes the fall on the next bar.  Trading
  back and forth to keep a clock running pays fees every cycle, so the task's fee is high (0.25%).

Prices have ``open`` equal to the previous close, so a market order decided at the close of
``t`` fills at that price (plus slippage), and being long over bar ``t + 1`` earns its log return.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np

from envs import make_env, run_policy
from envs.runner import Policy as PolicyFn
from features.data.schema import BarKey, DataError, parse_timeframe
from features.data.synthetic import DEFAULT_START, YEAR, OrnsteinUhlenbeck
from features.panel import FeaturePanel
from rl.builders import algorithm_config, env_config, seed_replay_buffer
from rl.config import AlgoConfig, ModelConfig, TrainLoopConfig

HOLD, BUY, SELL = 0, 1, 2  # the ``discrete`` action scheme with one instrument
MEAN_REVERSION_KEY = BarKey("synthetic", "OU/USD", "1h")
MEMORY_KEY = BarKey("synthetic", "CUE/USD", "1h")
ZSCORE_CLIP = 5.0
MEAN_REVERSION_FEE = 0.001  # the project's default taker fee
MEMORY_FEE = 0.0025  # high enough that keeping a clock running by trading costs more than it earns
HELD_OUT_SEED = 10_000  # the test panel of seed s is built from seed s + this


def task_env(window: int, *, fee: float = MEAN_REVERSION_FEE, slippage_bps: float = 1.0,
             episode_length: int = 256) -> dict[str, Any]:
    """Environment settings of the tasks (``rl.builders`` form): discrete actions, log-return reward,
    fees and a fixed slippage on, no volatility slippage or market impact (synthetic volume means nothing)."""
    return {
        "window": window, "episode_length": episode_length, "fee": fee, "action": "discrete",
        "reward": "log_return",
        "costs": {"slippage_bps": slippage_bps, "slippage_vol_mult": 0.0, "impact_coef": 0.0},
    }


def _panel(key: BarKey, log_close: np.ndarray, names: tuple[str, ...], features: np.ndarray) -> FeaturePanel:
    """One instrument's bars from a log close path (open = previous close, no intrabar range beyond it)."""
    close = np.exp(log_close)
    open_ = np.concatenate([[close[0]], close[:-1]])
    ohlcv = np.stack([open_, np.maximum(open_, close), np.minimum(open_, close), close,
                      np.full_like(close, 1_000.0)], axis=-1)
    step = parse_timeframe(key.timeframe) // timedelta(microseconds=1)
    start = np.datetime64(DEFAULT_START.replace(tzinfo=None), "us")
    timestamps = start + np.arange(len(close)) * np.timedelta64(step, "us")
    return FeaturePanel(timestamps, (key,), names, features.astype(np.float32)[:, None, :], ohlcv[:, None, :])


# -- mean reversion ---------------------------------------------------------------------------------


def mean_reversion_panel(n_bars: int, seed: int, *, half_life: float = 2.0, stationary_std: float = 0.02,
                         mean_price: float = 100.0) -> FeaturePanel:
    """Hourly bars of an OU log price with ``half_life`` bars and ``stationary_std`` around log(mean_price).

    Features (causal, in stationary deviations, clipped to +-5): ``zscore``, ``return``.
    """
    if half_life <= 0 or stationary_std <= 0:
        raise DataError(f"half_life and stationary_std must be positive, got {half_life}, {stationary_std}")
    hours = parse_timeframe(MEAN_REVERSION_KEY.timeframe) / timedelta(hours=1)
    kappa = math.log(2) / (half_life * hours / (YEAR / timedelta(hours=1)))
    process = OrnsteinUhlenbeck(mean_reversion=kappa, mean_price=mean_price,
                                volatility=stationary_std * math.sqrt(2 * kappa), initial_price=mean_price)
    bars = process.simulate(n_bars, MEAN_REVERSION_KEY.timeframe, seed=seed, substeps=4)
    log_close = np.log(bars["close"].to_numpy())
    zscore = (log_close - math.log(mean_price)) / stationary_std
    last_return = np.diff(log_close, prepend=log_close[0]) / stationary_std
    features = np.clip(np.stack([zscore, last_return], axis=-1), -ZSCORE_CLIP, ZSCORE_CLIP)
    return _panel(MEAN_REVERSION_KEY, log_close, ("zscore", "return"), features)


def mean_reversion_oracle(panel: FeaturePanel, enter: float = -0.3, exit: float = 0.3) -> PolicyFn:
    """Buy when ``zscore`` < ``enter``, sell when it is > ``exit``, else hold (hysteresis saves fees)."""
    zscore = panel.features[:, 0, panel.feature_names.index("zscore")]

    def act(obs: np.ndarray, info: Mapping[str, Any]) -> int:
        z = zscore[info["bar"]]
        return BUY if z < enter else SELL if z > exit else HOLD

    return act


# -- memory ------------------------------------------------------------------------------------------


def cue_bars(panel: FeaturePanel) -> np.ndarray:
    """Rows where the ``cue`` feature fires."""
    return np.flatnonzero(panel.features[:, 0, panel.feature_names.index("cue")] > 0)


def memory_panel(n_bars: int, seed: int, *, delay: int = 3, jump: float = 0.06, noise: float = 0.005,
                 mean_gap: float = 12.0) -> FeaturePanel:
    """Bars with cues at random times; ``delay`` bars after each cue the log price jumps up by ``jump``.

    The price first falls by the same amount: half on the cue bar itself, half on the next bar;
    the bars between that and the jump are ordinary.  Events never overlap (the next cue comes
    after the jump) and every bar has Gaussian log-return ``noise``, so the level has no drift.
    Feature: ``cue`` (1 at a cue bar, else 0).
    """
    if delay < 2 or jump <= 0 or noise < 0 or mean_gap < delay + 2:
        raise DataError(f"memory task needs delay >= 2, jump > 0, noise >= 0 and mean_gap >= delay + 2; got "
                        f"delay={delay}, jump={jump}, noise={noise}, mean_gap={mean_gap}")
    rng = np.random.default_rng(seed)
    returns = noise * rng.standard_normal(n_bars)
    returns[0] = 0.0
    cue = np.zeros(n_bars)
    bar = int(rng.integers(1, delay + 2))
    while bar + delay < n_bars:
        cue[bar] = 1.0
        returns[bar : bar + 2] -= jump / 2
        returns[bar + delay] += jump
        bar += delay + 1 + int(rng.geometric(1.0 / (mean_gap - delay - 1)))
    return _panel(MEMORY_KEY, math.log(100.0) + np.cumsum(returns), ("cue",), cue[:, None])


def _scheduled(panel: FeaturePanel, default: int, by_offset: Mapping[int, int]) -> PolicyFn:
    """A policy acting ``by_offset[k]`` at the close ``k`` bars after each cue and ``default`` elsewhere."""
    actions = np.full(panel.n_bars, default)
    cues = cue_bars(panel)
    for offset, action in by_offset.items():
        bars = cues + offset
        actions[bars[bars < panel.n_bars]] = action

    def act(obs: np.ndarray, info: Mapping[str, Any]) -> int:
        return int(actions[info["bar"]])

    return act


def memory_oracle(panel: FeaturePanel, delay: int = 3) -> PolicyFn:
    """Long exactly over the jump bars: buy at the close ``delay - 1`` bars after a cue, sell at the next."""
    return _scheduled(panel, SELL, {delay - 1: BUY})


def memoryless_references(panel: FeaturePanel, delay: int = 3) -> dict[str, PolicyFn]:
    """The two ways to use a cue without remembering it, each worth about half the oracle's return.

    ``cue_and_hold`` buys at the cue and sells after the jump (it sits through the fall on the next
    bar); ``sell_at_cue`` is long between events and sells at the cue, so the fill starts the
    environment's time-since-last-fill clock, and buys back on that clock (it takes the fall on
    the cue bar).
    """
    return {
        "cue_and_hold": _scheduled(panel, HOLD, {0: BUY, delay: SELL}),
        "sell_at_cue": _scheduled(panel, BUY, {k: SELL for k in range(delay - 1)}),
    }


# -- scoring -----------------------------------------------------------------------------------------


def buy_and_hold_policy(obs: np.ndarray, info: Mapping[str, Any]) -> int:
    return BUY


def random_policy(seed: int) -> PolicyFn:
    rng = np.random.default_rng(seed)

    def act(obs: np.ndarray, info: Mapping[str, Any]) -> int:
        return int(rng.integers(0, 3))

    return act


def log_growth(policy: PolicyFn, panel: FeaturePanel, env_settings: Mapping[str, Any]) -> float:
    """log(final / initial net worth) of ``policy`` over the whole panel (evaluation mode, costs on)."""
    env = make_env(env_config(env_settings, "eval"), panel)
    result = run_policy(env, policy)
    return float(math.log(result.final_net_worth / env.config.initial_cash))


def module_policy(module: Any) -> PolicyFn:
    """A greedy RLModule as a policy function (recurrent state starts empty at the first call)."""
    from rl.module_policy import ModulePolicy  # torch / Ray only when an agent is evaluated

    policy = ModulePolicy(module)
    policy.reset(None)
    return lambda obs, info: policy.act(obs)


@dataclass(frozen=True)
class LearningTask:
    """A training panel, a held-out panel (another seed), the environment settings and the test oracle."""

    name: str
    env: dict[str, Any]
    train: FeaturePanel
    test: FeaturePanel
    oracle: PolicyFn  # on ``test``
    references: dict[str, PolicyFn] = field(default_factory=dict)  # more policies to score on ``test``


def mean_reversion_task(seed: int, *, window: int = 8, train_bars: int = 20_000, test_bars: int = 3_000,
                        fee: float = MEAN_REVERSION_FEE) -> LearningTask:
    test = mean_reversion_panel(test_bars, seed + HELD_OUT_SEED)
    return LearningTask("mean_reversion", task_env(window, fee=fee), mean_reversion_panel(train_bars, seed),
                        test, mean_reversion_oracle(test))


def memory_task(seed: int, *, window: int = 6, delay: int = 3, train_bars: int = 20_000,
                test_bars: int = 3_000, fee: float = MEMORY_FEE) -> LearningTask:
    train = memory_panel(train_bars, seed, delay=delay)
    test = memory_panel(test_bars, seed + HELD_OUT_SEED, delay=delay)
    return LearningTask("memory", task_env(window, fee=fee), train, test, memory_oracle(test, delay),
                        memoryless_references(test, delay))


@dataclass(frozen=True)
class Score:
    """Log growth of net worth of an agent and of the references on one held-out span."""

    agent: float
    oracle: float
    buy_and_hold: float
    random: float
    references: dict[str, float] = field(default_factory=dict)
    env_steps: int = 0
    seconds: float = 0.0

    @property
    def ratio(self) -> float:
        """The agent's share of the oracle's log growth."""
        return self.agent / self.oracle

    def line(self, label: str) -> str:
        extra = "".join(f"  {name} {value:+.3f}" for name, value in self.references.items())
        return (f"{label}: agent {self.agent:+.3f} = {self.ratio:.0%} of oracle {self.oracle:+.3f}  "
                f"buy&hold {self.buy_and_hold:+.3f}  random {self.random:+.3f}{extra}  "
                f"({self.env_steps:,} env steps, {self.seconds:.0f} s)")


def score(agent: PolicyFn, task: LearningTask, seed: int = 0, env_steps: int = 0, seconds: float = 0.0,
          ) -> Score:
    def growth(policy: PolicyFn) -> float:
        return log_growth(policy, task.test, task.env)

    return Score(growth(agent), growth(task.oracle), growth(buy_and_hold_policy), growth(random_policy(seed)),
                 {name: growth(policy) for name, policy in task.references.items()}, env_steps, seconds)


def train_and_score(task: LearningTask, algo: AlgoConfig, model: ModelConfig, env_steps: int, seed: int,
                    loop: TrainLoopConfig | None = None) -> Score:
    """Train on ``task.train`` for ``env_steps`` env steps, then score the greedy policy on ``task.test``."""
    config = algorithm_config(algo, model, loop or TrainLoopConfig(), task.env, task.train, seed)
    started = time.perf_counter()
    trainer = config.build_algo()
    seed_replay_buffer(trainer, seed)
    try:
        sampled = 0
        while sampled < env_steps:
            result = trainer.train()
            sampled = int(result.get("num_env_steps_sampled_lifetime")
                          or result["env_runners"]["num_env_steps_sampled_lifetime"])
        seconds = time.perf_counter() - started
        return score(module_policy(trainer.get_module()), task, seed, sampled, seconds)
    finally:
        trainer.stop()
