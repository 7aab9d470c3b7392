"""Backbones and RLModules: output shapes, observation split, LSTM state carry, Q-head algebra."""

from __future__ import annotations

from typing import Any, cast

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from ray.rllib.algorithms.dqn.dqn_learner import QF_NEXT_PREDS, QF_PREDS, QF_TARGET_NEXT_PREDS
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.rl_module import RLModule

from rl.models import (
    BACKBONES,
    ActorCriticModule,
    ModelConfigError,
    ObsLayout,
    QNetworkModule,
    build_module_spec,
)
from rl.models.config import config_dict
from tests.rl.toy_env import OBS_DIM, TINY_MODEL, TOKEN_DIM, WINDOW

OBS_SPACE = gym.spaces.Box(-10.0, 10.0, (OBS_DIM,), np.float32)
ACTION_SPACES = {
    "discrete": (gym.spaces.Discrete(3), 3),
    "box": (gym.spaces.Box(-1.0, 1.0, (2,), np.float32), 4),  # mean and log-std per dimension
    "multidiscrete": (gym.spaces.MultiDiscrete([3, 2]), 5),
}
B, T = 5, 3


def _build(algo: str, model: str, action_space: gym.Space, **extra: Any) -> RLModule:
    spec = build_module_spec(algo, model, TINY_MODEL | extra)
    spec.observation_space, spec.action_space = OBS_SPACE, action_space
    torch.manual_seed(0)
    return spec.build()


def _actor_critic(model: str, action_space: gym.Space, **extra: Any) -> ActorCriticModule:
    module = _build("ppo", model, action_space, **extra)
    assert isinstance(module, ActorCriticModule)
    return module


def _q_network(model: str, action_space: gym.Space, **extra: Any) -> QNetworkModule:
    module = _build("dqn", model, action_space, **extra)
    assert isinstance(module, QNetworkModule)
    return module


def _initial_state(module: RLModule, batch: int) -> dict[str, torch.Tensor]:
    return {
        k: torch.from_numpy(v).expand(batch, *v.shape).clone() for k, v in module.get_initial_state().items()
    }


def _batch(module: RLModule, obs: torch.Tensor) -> dict[str, Any]:
    """Recurrent modules get ``[B, T, obs]`` plus a fresh state, others ``[B, obs]``."""
    if module.is_stateful():
        return {Columns.OBS: obs, Columns.STATE_IN: _initial_state(module, obs.shape[0])}
    return {Columns.OBS: obs[:, -1]}


@pytest.mark.parametrize("action_name", sorted(ACTION_SPACES))
@pytest.mark.parametrize("model", sorted(BACKBONES))
def test_actor_critic_shapes(model: str, action_name: str) -> None:
    action_space, num_outputs = ACTION_SPACES[action_name]
    module = _actor_critic(model, action_space)
    batch = _batch(module, torch.randn(B, T, OBS_DIM))
    lead = (B, T) if module.is_stateful() else (B,)

    out = module.forward_inference(batch)
    train_out = module.forward_train(batch)
    values = module.compute_values(batch)

    assert out[Columns.ACTION_DIST_INPUTS].shape == (*lead, num_outputs)
    assert train_out[Columns.EMBEDDINGS].shape[:-1] == lead
    assert values.shape == lead
    dist = module.get_inference_action_dist_cls().from_logits(out[Columns.ACTION_DIST_INPUTS])
    sample = cast(torch.Tensor, dist.sample())
    assert sample.shape == (*lead, *(action_space.shape or ()))
    assert cast(torch.Tensor, dist.logp(sample)).shape == lead


@pytest.mark.parametrize("model", sorted(BACKBONES))
def test_q_network_shapes(model: str) -> None:
    module = _q_network(model, gym.spaces.Discrete(3), double_q=True)
    module.make_target_networks()
    batch = _batch(module, torch.randn(B, T, OBS_DIM))
    lead = (B, T) if module.is_stateful() else (B,)
    train_batch = batch | {Columns.NEXT_OBS: batch[Columns.OBS] + 1.0}
    if module.is_stateful():
        train_batch[Columns.NEXT_STATE_IN] = _initial_state(module, B)

    assert module.compute_q_values(batch)[QF_PREDS].shape == (*lead, 3)
    assert module.forward_inference(batch)[Columns.ACTIONS].shape == lead
    out = module.forward_train(train_batch)
    for key in (QF_PREDS, QF_NEXT_PREDS, QF_TARGET_NEXT_PREDS):
        assert out[key].shape == (*lead, 3)


def test_dueling_head_averages_to_state_value() -> None:
    module = _q_network("mlp", gym.spaces.Discrete(4), dueling=True)
    obs = torch.randn(B, OBS_DIM)
    embedding, _ = module.backbone(obs)
    q_values = module.compute_q_values({Columns.OBS: obs})[QF_PREDS]
    head = module.q_head
    assert head.value is not None
    torch.testing.assert_close(q_values.mean(dim=-1), head.value(embedding).squeeze(-1))
    advantages = head.advantage(embedding)
    torch.testing.assert_close(q_values - q_values[:, :1], advantages - advantages[:, :1])


def test_epsilon_one_explores_every_action_and_zero_is_greedy() -> None:
    module = _build("dqn", "mlp", gym.spaces.Discrete(3), epsilon=1.0)
    obs = torch.randn(1, OBS_DIM).expand(600, OBS_DIM)
    explored = module.forward_exploration({Columns.OBS: obs}, t=0)[Columns.ACTIONS]
    greedy = module.forward_inference({Columns.OBS: obs})[Columns.ACTIONS]
    counts = np.bincount(explored.numpy(), minlength=3)
    assert counts.min() > 150  # uniform: 200 expected per action
    assert len(set(greedy.tolist())) == 1


def _lstm_step(
    module: RLModule, obs: torch.Tensor, state: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, Any]:
    out = module.forward_inference({Columns.OBS: obs, Columns.STATE_IN: state})
    return out[Columns.ACTION_DIST_INPUTS], out[Columns.STATE_OUT]


def test_lstm_state_carries_across_steps_and_resets() -> None:
    module = _build("a2c", "lstm", gym.spaces.Discrete(3))
    first_a, first_b, second = (torch.randn(1, 1, OBS_DIM) for _ in range(3))

    _, state_a = _lstm_step(module, first_a, _initial_state(module, 1))
    _, state_b = _lstm_step(module, first_b, _initial_state(module, 1))
    after_a, _ = _lstm_step(module, second, state_a)
    after_b, _ = _lstm_step(module, second, state_b)
    fresh_1, _ = _lstm_step(module, second, _initial_state(module, 1))
    fresh_2, _ = _lstm_step(module, second, _initial_state(module, 1))

    assert not torch.allclose(after_a, after_b)  # same input, different history
    assert not torch.allclose(after_a, fresh_1)
    torch.testing.assert_close(fresh_1, fresh_2)  # the initial state is a clean reset


def test_lstm_stepwise_equals_sequence() -> None:
    module = _build("ppo", "lstm", gym.spaces.Discrete(3))
    sequence = torch.randn(2, 4, OBS_DIM)
    whole, _ = _lstm_step(module, sequence, _initial_state(module, 2))
    state, steps = _initial_state(module, 2), []
    for t in range(4):
        logits, state = _lstm_step(module, sequence[:, t : t + 1], state)
        steps.append(logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), whole)


def _changed_oldest_bar(obs: torch.Tensor) -> torch.Tensor:
    changed = obs.clone()
    changed[..., :TOKEN_DIM] += 3.0
    return changed


def test_lstm_reads_only_the_newest_bar_while_window_models_read_all_bars() -> None:
    lstm = _build("ppo", "lstm", gym.spaces.Discrete(3))
    obs = torch.randn(2, 1, OBS_DIM)
    state = _initial_state(lstm, 2)
    torch.testing.assert_close(
        _lstm_step(lstm, obs, state)[0], _lstm_step(lstm, _changed_oldest_bar(obs), state)[0]
    )
    for model in ("mlp", "cnn", "attention"):
        module = _build("ppo", model, gym.spaces.Discrete(3), pooling="mean")
        flat = obs[:, 0]
        before = module.forward_inference({Columns.OBS: flat})[Columns.ACTION_DIST_INPUTS]
        after = module.forward_inference({Columns.OBS: _changed_oldest_bar(flat)})[Columns.ACTION_DIST_INPUTS]
        assert not torch.allclose(before, after), model


def test_dropout_only_in_training_forward() -> None:
    module = _build("ppo", "mlp", gym.spaces.Discrete(3), dropout=0.5)
    batch = {Columns.OBS: torch.randn(B, OBS_DIM)}
    inference = [module.forward_inference(batch)[Columns.ACTION_DIST_INPUTS] for _ in range(2)]
    torch.testing.assert_close(inference[0], inference[1])
    trained = [module.forward_train(batch)[Columns.EMBEDDINGS] for _ in range(2)]
    assert not torch.allclose(trained[0], trained[1])


@given(
    window=st.integers(1, 6),
    token_dim=st.integers(1, 5),
    state_dim=st.integers(0, 4),
    lead=st.lists(st.integers(1, 3), min_size=1, max_size=2),
)
@settings(max_examples=40, deadline=None)
def test_split_then_concatenate_is_identity(
    window: int, token_dim: int, state_dim: int, lead: list[int]
) -> None:
    layout = ObsLayout(window, token_dim, state_dim)
    obs = torch.arange(float(np.prod(lead) * layout.obs_dim)).reshape(*lead, layout.obs_dim)
    tokens, portfolio = layout.split(obs)
    assert tokens.shape == (*lead, window, token_dim)
    assert portfolio.shape == (*lead, state_dim)
    rebuilt = torch.cat([tokens.reshape(*lead, window * token_dim), portfolio], dim=-1)
    torch.testing.assert_close(rebuilt, obs)
    # Row w of the block holds bar w: values w*token_dim .. (w+1)*token_dim-1 of the flat vector.
    torch.testing.assert_close(tokens[..., -1, :], obs[..., (window - 1) * token_dim : window * token_dim])


@pytest.mark.parametrize(
    ("algo", "model", "extra", "action_space", "message"),
    [
        ("ppo", "cnn", {"window": 5}, gym.spaces.Discrete(3), "does not match the observation size"),
        (
            "ppo",
            "attention",
            {"window": None, "token_dim": None, "state_dim": None},
            gym.spaces.Discrete(3),
            "missing",
        ),
        ("ppo", "mlp", {"dropout": 1.0}, gym.spaces.Discrete(3), "dropout"),
        ("ppo", "mlp", {"activation": "swish"}, gym.spaces.Discrete(3), "activation"),
        ("ppo", "attention", {"d_model": 6, "num_heads": 4}, gym.spaces.Discrete(3), "divisible"),
        ("ppo", "mlp", {}, gym.spaces.Box(-1, 1, (2, 2)), "unsupported action space"),
        ("dqn", "mlp", {}, gym.spaces.Box(-1, 1, (2,)), "Discrete action space"),
        ("dqn", "mlp", {"num_atoms": 51}, gym.spaces.Discrete(3), "distributional"),
    ],
)
def test_bad_configs_raise_clear_errors(
    algo: str, model: str, extra: dict, action_space: gym.Space, message: str
) -> None:
    with pytest.raises(ModelConfigError, match=message):
        _build(algo, model, action_space, **extra)


def test_registry_rejects_unknown_names_and_recurrent_needs_seq_len() -> None:
    with pytest.raises(ModelConfigError, match="unknown model"):
        build_module_spec("ppo", "gru", TINY_MODEL)
    with pytest.raises(ModelConfigError, match="unknown algorithm"):
        build_module_spec("sac", "mlp", TINY_MODEL)
    assert config_dict(build_module_spec("a2c", "lstm", {"window": WINDOW}).model_config)["max_seq_len"] == 20
    spec = build_module_spec("ppo", "lstm", TINY_MODEL | {"max_seq_len": 0})
    spec.observation_space, spec.action_space = OBS_SPACE, gym.spaces.Discrete(3)
    with pytest.raises(ModelConfigError, match="max_seq_len"):
        spec.build()
