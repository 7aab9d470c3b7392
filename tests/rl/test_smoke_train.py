"""PPO, A2C and DQN train for two iterations on the toy env and survive a checkpoint round trip."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
import torch
from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.algorithms.algorithm_config import AlgorithmConfig
from ray.rllib.algorithms.dqn import DQNConfig
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.learner import Learner
from ray.rllib.core.rl_module.rl_module import RLModule

from rl.algorithms import A2C, A2CConfig
from rl.models import ModelConfigError, configure_model
from tests.rl.toy_env import OBS_DIM, TINY_MODEL, ToyTradingEnv

BATCH = 64
pytestmark = [
    pytest.mark.usefixtures("ray_session"),
    # RLlib re-registers its env wrapper for every algorithm it builds.
    pytest.mark.filterwarnings("ignore:.*Overriding environment:UserWarning"),
]


def _config(algo: str, model: str, continuous: bool) -> AlgorithmConfig:
    config: AlgorithmConfig
    if algo == "ppo":
        config = PPOConfig().training(train_batch_size_per_learner=BATCH, minibatch_size=32, num_epochs=2)
    elif algo == "a2c":
        config = A2CConfig().training(train_batch_size_per_learner=BATCH, lr=1e-3)
    else:
        config = (
            DQNConfig()
            .training(
                train_batch_size_per_learner=16,
                num_steps_sampled_before_learning_starts=32,
                replay_buffer_config={"type": "EpisodeReplayBuffer", "capacity": 1000},
            )
            .env_runners(rollout_fragment_length=32)
            # DQN otherwise loops inside one iteration until 1000 env steps are sampled.
            .reporting(min_sample_timesteps_per_iteration=0, min_time_s_per_iteration=0)
        )
    config = (
        config.environment(ToyTradingEnv, env_config={"continuous": continuous})
        .env_runners(num_env_runners=0)
        .debugging(seed=0)
    )
    return configure_model(config, algo, model, TINY_MODEL)


def _inference(module: RLModule, obs: torch.Tensor) -> dict[str, Any]:
    batch: dict[str, Any] = {Columns.OBS: obs}
    if module.is_stateful():
        batch[Columns.OBS] = obs.unsqueeze(1)
        state = module.get_initial_state()
        batch[Columns.STATE_IN] = {
            k: torch.from_numpy(v).expand(len(obs), *v.shape) for k, v in state.items()
        }
    return module.forward_inference(batch)


def _greedy(algo: Algorithm, obs: torch.Tensor) -> np.ndarray:
    module = algo.get_module()
    assert module is not None
    out = _inference(module, obs)
    if Columns.ACTIONS in out:  # DQN acts greedily itself
        return out[Columns.ACTIONS].numpy()
    dist = module.get_inference_action_dist_cls().from_logits(out[Columns.ACTION_DIST_INPUTS])
    return cast(torch.Tensor, dist.to_deterministic().sample()).numpy()


@pytest.mark.parametrize(
    ("algo", "model", "continuous"),
    [
        ("ppo", "attention", False),
        ("ppo", "lstm", True),
        ("a2c", "mlp", False),
        ("a2c", "cnn", True),
        ("a2c", "lstm", False),
        ("dqn", "cnn", False),
        ("dqn", "lstm", False),
    ],
)
def test_train_two_iterations_and_restore(algo: str, model: str, continuous: bool, tmp_path: Path) -> None:
    trainer = _config(algo, model, continuous).build_algo()
    obs = torch.from_numpy(np.random.default_rng(1).normal(size=(8, OBS_DIM)).astype(np.float32))
    try:
        initial = _weights(trainer)
        results = [trainer.train() for _ in range(2)]
        learner_results = results[-1]["learners"]["default_policy"]
        assert learner_results["num_module_steps_trained_lifetime"] > 0
        assert np.isfinite(learner_results["total_loss" if algo != "dqn" else "qf_loss"])
        # Gradient steps happened and reached the env runner's module (weight sync).
        assert any(not np.allclose(initial[k], v) for k, v in _weights(trainer).items())
        actions = _greedy(trainer, obs)
        checkpoint = trainer.save_to_path(str(tmp_path / "checkpoint"))
    finally:
        trainer.stop()
    restored = Algorithm.from_checkpoint(checkpoint)
    try:
        assert type(restored) is type(trainer)
        np.testing.assert_array_equal(_greedy(restored, obs), actions)
    finally:
        restored.stop()


def _weights(algo: Algorithm) -> dict[str, np.ndarray]:
    module = algo.get_module()
    assert module is not None
    return {key: np.array(value) for key, value in module.get_state().items()}


def _adam_step_counts(learner: Learner, _: Any = None) -> set[int]:
    return {int(state["step"]) for state in learner.get_optimizer().state.values()}


def test_a2c_makes_exactly_one_gradient_step_per_iteration() -> None:
    trainer = _config("a2c", "mlp", False).build_algo()
    try:
        assert isinstance(trainer, A2C)
        for iteration in (1, 2):
            result = trainer.train()
            assert trainer.learner_group is not None
            calls = trainer.learner_group.foreach_learner(_adam_step_counts)
            assert [call.get() for call in calls] == [{iteration}]  # Adam's step count, every parameter
            sampled = result["env_runners"]["num_env_steps_sampled_lifetime"]
            assert sampled == pytest.approx(iteration * BATCH, abs=1)
    finally:
        trainer.stop()


def test_dqn_with_lstm_rejects_prioritized_replay() -> None:
    config = DQNConfig().environment(ToyTradingEnv).env_runners(num_env_runners=0)
    with pytest.raises(ModelConfigError, match="EpisodeReplayBuffer"):
        configure_model(config, "dqn", "lstm", TINY_MODEL)
    configure_model(
        config.training(replay_buffer_config={"type": "EpisodeReplayBuffer"}), "dqn", "lstm", TINY_MODEL
    )
    # DQN samples sequences of this length from its *own* model config, so it must be copied there.
    assert config.model_config["max_seq_len"] == TINY_MODEL["max_seq_len"]


def test_a2c_runs_under_tune_by_registered_name(tmp_path: Path) -> None:
    from ray import tune

    from rl.algorithms import register_a2c

    register_a2c()
    config = _config("a2c", "mlp", False)
    tuner = tune.Tuner(
        "A2C",
        param_space=config.to_dict(),
        run_config=tune.RunConfig(stop={"training_iteration": 1}, storage_path=str(tmp_path), verbose=0),
    )
    results = tuner.fit()
    assert not results.errors
    assert len(results) == 1
    assert (results[0].metrics or {}).get("training_iteration") == 1
