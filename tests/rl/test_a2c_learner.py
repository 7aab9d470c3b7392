"""A2C loss against hand computation; config validation; weight decay and grad-clip wiring."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.evaluation.postprocessing import Postprocessing

from rl.algorithms import A2CConfig, A2CTorchLearner, WeightDecayPPOTorchLearner, weight_decay_learner_class
from rl.models import ActorCriticModule, build_module_spec
from tests.rl.toy_env import TINY_MODEL, ToyTradingEnv

VF_COEFF, ENT_COEFF = 0.5, 0.01
ADVANTAGES = np.array([1.0, -0.5, 2.0, 0.3])
VALUE_TARGETS = np.array([1.0, 0.0, -1.0, 2.0])
# Column 0 of the embedding is the value prediction minus the bias we set on the vf head (0.5).
EMBEDDINGS = np.array([[0.2] + [0.0] * 15, [-1.0] + [1.0] * 15, [0.7] + [0.0] * 15, [3.0] + [2.0] * 15])
VALUE_BIAS = 0.5


def _learner(continuous: bool) -> A2CTorchLearner:
    config = (
        A2CConfig()
        .environment(ToyTradingEnv, env_config={"continuous": continuous})
        .training(vf_loss_coeff=VF_COEFF, entropy_coeff=ENT_COEFF)
        .rl_module(rl_module_spec=build_module_spec("a2c", "mlp", TINY_MODEL))
    )
    learner = config.build_learner(env=ToyTradingEnv({"continuous": continuous}))
    module = learner.module["default_policy"]
    assert isinstance(module, ActorCriticModule)
    with torch.no_grad():  # V(embedding) = embedding[0] + 0.5, so the test knows every value.
        module.vf.weight.zero_()
        module.vf.weight[0, 0] = 1.0
        module.vf.bias.fill_(VALUE_BIAS)
    assert isinstance(learner, A2CTorchLearner)
    return learner


def _loss(
    learner: A2CTorchLearner, logits: np.ndarray, actions: np.ndarray, mask: np.ndarray | None
) -> float:
    batch = {
        Columns.ACTIONS: torch.tensor(actions),
        Postprocessing.ADVANTAGES: torch.tensor(ADVANTAGES, dtype=torch.float32),
        Postprocessing.VALUE_TARGETS: torch.tensor(VALUE_TARGETS, dtype=torch.float32),
    }
    if mask is not None:
        batch[Columns.LOSS_MASK] = torch.tensor(mask)
    fwd_out = {
        Columns.ACTION_DIST_INPUTS: torch.tensor(logits, dtype=torch.float32),
        Columns.EMBEDDINGS: torch.tensor(EMBEDDINGS, dtype=torch.float32),
    }
    loss = learner.compute_loss_for_module(
        module_id="default_policy", config=learner.config, batch=batch, fwd_out=fwd_out
    )
    return float(loss.detach())


def _expected(logp: np.ndarray, entropy: np.ndarray, valid: np.ndarray) -> float:
    values = EMBEDDINGS[:, 0] + VALUE_BIAS
    policy = -np.mean((logp * ADVANTAGES)[valid])
    vf = np.mean(((values - VALUE_TARGETS) ** 2)[valid])
    return float(policy + VF_COEFF * vf - ENT_COEFF * np.mean(entropy[valid]))


@pytest.mark.parametrize("masked", [False, True])
def test_discrete_loss_matches_hand_computation(masked: bool) -> None:
    logits = np.array([[1.0, 2.0, 0.5], [0.0, 0.0, 0.0], [-1.0, 0.5, 2.0], [5.0, 5.0, 5.0]])
    actions = np.array([0, 2, 1, 1])
    mask = np.array([True, True, True, False]) if masked else None
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    logp = log_probs[np.arange(4), actions]
    entropy = -(np.exp(log_probs) * log_probs).sum(axis=1)
    valid = mask if mask is not None else np.ones(4, bool)

    loss = _loss(_learner(continuous=False), logits, actions, mask)

    assert loss == pytest.approx(_expected(logp, entropy, valid), rel=1e-5)


def test_gaussian_loss_matches_hand_computation() -> None:
    means, log_stds = np.array([0.0, 0.5, -1.0, 0.2]), np.array([0.0, -1.0, 0.3, -0.5])
    actions = np.array([[0.3], [0.4], [-2.0], [1.0]])
    logits = np.stack([means, log_stds], axis=1)
    z = (actions[:, 0] - means) / np.exp(log_stds)
    logp = -0.5 * z**2 - log_stds - 0.5 * math.log(2 * math.pi)
    entropy = 0.5 + 0.5 * math.log(2 * math.pi) + log_stds

    loss = _loss(_learner(continuous=True), logits, actions.astype(np.float32), None)

    assert loss == pytest.approx(_expected(logp, entropy, np.ones(4, bool)), rel=1e-5)


@pytest.mark.parametrize(
    "settings",
    [{"num_epochs": 3}, {"minibatch_size": 32}, {"entropy_coeff": -0.1}, {"lambda_": 1.5}],
)
def test_config_rejects_settings_a2c_cannot_honour(settings: dict) -> None:
    config = A2CConfig().environment(ToyTradingEnv).training(**settings)
    with pytest.raises(ValueError, match=next(iter(settings)).rstrip("_")):
        config.validate()


def test_weight_decay_and_grad_clip_reach_the_optimizer() -> None:
    config = (
        A2CConfig()
        .environment(ToyTradingEnv)
        .training(grad_clip=0.25, grad_clip_by="value")
        .learners(learner_config_dict={"weight_decay": 1e-3})
    )
    learner = config.build_learner(env=ToyTradingEnv())
    optimizer = learner.get_optimizer()
    assert isinstance(optimizer, torch.optim.Adam)
    assert optimizer.param_groups[0]["weight_decay"] == pytest.approx(1e-3)
    assert (learner.config.grad_clip, learner.config.grad_clip_by) == (0.25, "value")


def test_weight_decay_learner_for_ppo_and_negative_decay_rejected() -> None:
    from ray.rllib.algorithms.ppo import PPOConfig

    assert weight_decay_learner_class("PPO") is WeightDecayPPOTorchLearner
    config = (
        PPOConfig()
        .environment(ToyTradingEnv)
        .learners(learner_class=WeightDecayPPOTorchLearner, learner_config_dict={"weight_decay": -1.0})
    )
    with pytest.raises(ValueError, match="weight_decay"):
        config.build_learner(env=ToyTradingEnv())


def test_default_module_runs_on_a_generic_flat_env() -> None:
    """Without a layout the default (mlp) module treats the observation as one flat vector."""
    learner = A2CConfig().environment("CartPole-v1").build_learner(env=gym.make("CartPole-v1"))
    module = learner.module["default_policy"]
    out = module.forward_inference({Columns.OBS: torch.zeros(3, 4)})
    assert out[Columns.ACTION_DIST_INPUTS].shape == (3, 2)
