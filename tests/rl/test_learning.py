"""Proof that the agents learn: RLlib examples-as-tests on synthetic markets with a known signal.

PPO, A2C and DQN with the MLP model learn the mean-reversion task (rl.learning_tasks); PPO with the
LSTM and the attention model learn the memory task, which a policy that forgets the cue cannot
solve (an MLP that sees only the newest bar stays near half the oracle: the slow control below).
Agents are scored greedily on a held-out span (another seed) through the trading environment with
fees on, against an oracle that knows the signal.  CI versions are short; the ``slow`` versions
(``pytest -m slow``) train longer, on other seeds, against higher bars.  Results and wall times:
docs/agents.md, "Proof that agents learn".
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

from rl.config import AlgoConfig, ModelConfig, TrainLoopConfig
from rl.learning_tasks import (
    BUY,
    LearningTask,
    Score,
    cue_bars,
    log_growth,
    mean_reversion_panel,
    mean_reversion_task,
    memory_oracle,
    memory_panel,
    memory_task,
    task_env,
    train_and_score,
)


@dataclass(frozen=True)
class Setup:
    """One algorithm + model with its hyperparameters and step budget."""

    algo: AlgoConfig
    model: ModelConfig
    env_steps: int
    loop: TrainLoopConfig = field(default_factory=TrainLoopConfig)


# RLlib re-registers its env wrapper for every algorithm it builds.
pytestmark = pytest.mark.filterwarnings("ignore:.*Overriding environment:UserWarning")

MLP = ModelConfig("mlp", hidden=[64, 64])
# Short-horizon signal: gamma 0.9 looks ~10 bars ahead, plenty for a half-life of 2 bars.
MEAN_REVERSION = {
    "ppo": Setup(AlgoConfig("ppo", lr=3e-4, gamma=0.9, train_batch_size=1000, minibatch_size=128,
                            num_epochs=6, entropy_coeff=0.01), MLP, 16_000),
    "a2c": Setup(AlgoConfig("a2c", lr=2e-3, gamma=0.9, train_batch_size=128, lambda_=0.95,
                            entropy_coeff=0.01), MLP, 20_000),
    # One replay update of 64 per 8 sampled steps: RLlib's per-update overhead, not the env, sets DQN's pace.
    "dqn": Setup(AlgoConfig("dqn", lr=1e-3, gamma=0.9, train_batch_size=1000, minibatch_size=64, n_step=3,
                            learning_starts=500, epsilon_steps=6000, epsilon_final=0.02,
                            target_network_update_freq=250, grad_clip=10.0),
                 MLP, 16_000, TrainLoopConfig(rollout_fragment_length=8)),
}
# Fees of 0.25% punish exploring trades: a larger entropy bonus keeps PPO from settling on "never trade".
MEMORY_PPO = AlgoConfig("ppo", lr=1e-3, gamma=0.9, train_batch_size=1000, minibatch_size=128, num_epochs=6,
                        entropy_coeff=0.03)
MEMORY_MODELS = {
    "lstm": ModelConfig("lstm", hidden=[32], options={"lstm_cell_size": 32, "max_seq_len": 20}),
    "attention": ModelConfig("attention", hidden=[32],
                             options={"d_model": 32, "num_heads": 2, "num_layers": 1, "ff_dim": 64}),
}
MEMORY_STEPS = 25_000


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Small networks train faster on one thread, above all on a busy 2-core machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _learn(task: LearningTask, setup: Setup, seed: int, label: str, env_steps: int | None = None) -> Score:
    score = train_and_score(task, setup.algo, setup.model, env_steps or setup.env_steps, seed, setup.loop)
    print(score.line(f"{label} seed {seed}"))
    return score


def _assert_learned(score: Score, share: float) -> None:
    assert score.oracle > 3.0  # the signal is there: the oracle multiplies its money by e^3 or more
    assert score.ratio >= share, f"agent reached {score.ratio:.0%} of the oracle, needs {share:.0%}"
    assert score.agent - max(score.buy_and_hold, score.random) > 0.5 * score.oracle


def _assert_used_memory(score: Score, share: float) -> None:
    _assert_learned(score, share)
    assert score.agent > max(score.references.values()) + 0.2 * score.oracle  # more than forgetting allows


# -- the tasks themselves (no training) --------------------------------------------------------------


def test_mean_reversion_features_and_speed_of_reversion() -> None:
    panel = mean_reversion_panel(20_000, seed=3, half_life=2.0, stationary_std=0.02, mean_price=100.0)
    log_close = np.log(panel.close[:, 0])
    zscore, last_return = panel.features[:, 0, 0], panel.features[:, 0, 1]
    np.testing.assert_allclose(zscore, np.clip((log_close - math.log(100.0)) / 0.02, -5, 5), atol=1e-5)
    np.testing.assert_allclose(last_return[1:], np.clip(np.diff(log_close) / 0.02, -5, 5), atol=1e-5)
    phi = np.polyfit(zscore[:-1], zscore[1:], 1)[0]
    assert phi == pytest.approx(0.5**0.5, abs=0.02)  # half-life 2 bars: z decays by sqrt(1/2) a bar
    assert zscore.std() == pytest.approx(1.0, abs=0.05)
    np.testing.assert_array_equal(panel.ohlcv[1:, 0, 0], panel.ohlcv[:-1, 0, 3])  # open = previous close


def test_mean_reversion_oracle_earns_what_buy_and_hold_and_random_do_not() -> None:
    task = mean_reversion_task(seed=0)
    oracle = log_growth(task.oracle, task.test, task.env)
    buy_and_hold = log_growth(lambda obs, info: BUY, task.test, task.env)
    rng = np.random.default_rng(0)
    random = log_growth(lambda obs, info: int(rng.integers(0, 3)), task.test, task.env)
    assert oracle > 5.0
    assert abs(buy_and_hold) < 0.2  # the price ends near where it started
    assert random < -0.5  # fees


def test_memory_panel_events_without_noise() -> None:
    jump, delay = 0.06, 3
    panel = memory_panel(5_000, seed=5, delay=delay, jump=jump, noise=0.0, mean_gap=12.0)
    returns = np.diff(np.log(panel.close[:, 0]), prepend=math.log(100.0))
    cues = cue_bars(panel)
    expected = np.zeros(panel.n_bars)
    expected[cues] -= jump / 2
    expected[cues + 1] -= jump / 2
    expected[cues[cues + delay < panel.n_bars] + delay] += jump
    np.testing.assert_allclose(returns, expected, atol=1e-12)
    gaps = np.diff(cues)
    assert gaps.min() >= delay + 1  # events never overlap
    assert gaps.mean() == pytest.approx(12.0, rel=0.1)


def test_memory_oracle_earns_the_jumps_and_forgetting_earns_half() -> None:
    jump, fee, slippage, window, delay = 0.06, 0.0025, 1e-4, 6, 3
    task = memory_task(seed=1)
    panel = memory_panel(2_000, seed=7, delay=delay, jump=jump, noise=0.0)
    env = task_env(window, fee=fee, slippage_bps=1.0)
    cues = cue_bars(panel)
    # Events whose buy is decided at or after the first decision bar and whose sell fills inside the panel.
    events = int(np.sum((cues + delay - 1 >= window - 1) & (cues + delay + 1 <= panel.n_bars - 1)))
    # Buy at open * (1 + slippage) plus fee, sell at open * (1 - slippage) less fee; open = last close.
    round_trip = math.log((1 - slippage) * (1 - fee) / ((1 + slippage) * (1 + fee)))
    oracle = log_growth(memory_oracle(panel, delay), panel, env)
    assert events > 100
    assert oracle == pytest.approx(events * (jump + round_trip), abs=1e-9)
    for name, reference in task.references.items():
        growth = log_growth(reference, task.test, task.env)
        assert 0.35 < growth / log_growth(task.oracle, task.test, task.env) < 0.55, name


# -- learning (CI) -----------------------------------------------------------------------------------


@pytest.mark.usefixtures("ray_session", "one_torch_thread")
@pytest.mark.parametrize("algo", ["ppo", "a2c", "dqn"])
def test_mlp_learns_mean_reversion(algo: str) -> None:
    score = _learn(mean_reversion_task(seed=0), MEAN_REVERSION[algo], 0, f"mean reversion {algo}-mlp")
    _assert_learned(score, 0.6)


@pytest.mark.usefixtures("ray_session", "one_torch_thread")
@pytest.mark.parametrize("model", ["lstm", "attention"])
def test_ppo_remembers_the_cue(model: str) -> None:
    setup = Setup(MEMORY_PPO, MEMORY_MODELS[model], MEMORY_STEPS)
    _assert_used_memory(_learn(memory_task(seed=0), setup, 0, f"memory ppo-{model}"), 0.8)


# -- learning (slow: other seeds, longer, higher bars) -----------------------------------------------


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session", "one_torch_thread")
@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("algo", ["ppo", "a2c", "dqn"])
def test_mlp_learns_mean_reversion_long(algo: str, seed: int) -> None:
    setup = MEAN_REVERSION[algo]
    score = _learn(mean_reversion_task(seed), setup, seed, f"mean reversion {algo}-mlp", 2 * setup.env_steps)
    _assert_learned(score, 0.8)


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session", "one_torch_thread")
@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("model", ["lstm", "attention"])
def test_ppo_remembers_the_cue_long(model: str, seed: int) -> None:
    setup = Setup(MEMORY_PPO, MEMORY_MODELS[model], 2 * MEMORY_STEPS)
    _assert_used_memory(_learn(memory_task(seed), setup, seed, f"memory ppo-{model}"), 0.85)


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session", "one_torch_thread")
def test_mlp_without_memory_cannot_solve_the_memory_task() -> None:
    """The control: the same PPO with an MLP that sees only the newest bar stays near half the oracle."""
    setup = Setup(MEMORY_PPO, MLP, 2 * MEMORY_STEPS)
    score = _learn(memory_task(0, window=1), setup, 0, "memory ppo-mlp, window 1")
    assert score.ratio < 0.7  # measured: 55%; LSTM and attention reach 99-100%
