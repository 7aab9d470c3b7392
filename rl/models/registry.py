"""Pick an RLModule by algorithm and backbone name: ``build_module_spec("ppo", "cnn", {...})``.

Algorithms ``ppo`` and ``a2c`` get :class:`ActorCriticModule`; ``dqn`` gets :class:`QNetworkModule`.
Backbones: ``mlp``, ``cnn``, ``lstm``, ``attention``. Every combination is supported.

``lstm`` with ``dqn`` needs two algorithm-level settings that a module spec cannot carry, because
RLlib 2.60's ``DQN.training_step`` reads them from the AlgorithmConfig, not from the module:

- ``max_seq_len`` must be in ``config.model_config`` (``config.rl_module(model_config=...)``): DQN
  samples sequences of ``batch_length_T = max_seq_len`` from *that* dict. Missing, it samples
  length-1 sequences and the LSTM is never trained through time.
- the replay buffer must be ``EpisodeReplayBuffer``: the default ``PrioritizedEpisodeReplayBuffer``
  samples single transitions only and fails in ``update_priorities`` on the ``[B, T]`` TD errors.

:func:`configure_model` applies the spec and the first setting, and rejects a prioritized buffer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ray.rllib.algorithms.algorithm_config import AlgorithmConfig
from ray.rllib.core.rl_module.rl_module import RLModule, RLModuleSpec

from rl.models.actor_critic import ActorCriticModule
from rl.models.backbones import BACKBONES
from rl.models.config import ModelConfigError, config_dict
from rl.models.q_network import QNetworkModule

MODULES: dict[str, type[RLModule]] = {
    "ppo": ActorCriticModule,
    "a2c": ActorCriticModule,
    "dqn": QNetworkModule,
}
DEFAULT_MAX_SEQ_LEN = 20


def build_module_spec(algo: str, model: str, model_config: Mapping[str, Any]) -> RLModuleSpec:
    """RLModuleSpec for ``algo`` (ppo | a2c | dqn) with the ``model`` backbone.

    ``model_config`` carries the layout (``window``, ``token_dim``, ``state_dim``) and backbone options;
    ``backbone`` is set from ``model``. Recurrent backbones get ``max_seq_len`` = 20 unless given.
    Spaces are left to RLlib (taken from the env), so the module is validated when it is built.
    """
    algo_key, model_key = algo.lower(), model.lower()
    if algo_key not in MODULES:
        raise ModelConfigError(f"unknown algorithm {algo!r}; choose from {sorted(MODULES)}")
    if model_key not in BACKBONES:
        raise ModelConfigError(f"unknown model {model!r}; choose from {sorted(BACKBONES)}")
    given_backbone = model_config.get("backbone")
    if given_backbone is not None and given_backbone != model_key:
        raise ModelConfigError(f"model_config['backbone']={given_backbone!r} contradicts model={model!r}")
    config = dict(model_config) | {"backbone": model_key}
    if BACKBONES[model_key].recurrent:
        config.setdefault("max_seq_len", DEFAULT_MAX_SEQ_LEN)
    return RLModuleSpec(module_class=MODULES[algo_key], model_config=config)


def configure_model(
    config: AlgorithmConfig, algo: str, model: str, model_config: Mapping[str, Any]
) -> AlgorithmConfig:
    """Put ``build_module_spec(algo, model, model_config)`` into ``config``, with what the pair needs.

    For a recurrent backbone ``max_seq_len`` is also copied into the AlgorithmConfig's own model
    config; for DQN a prioritized replay buffer is rejected (see the module docstring). Call it
    after ``config.training(replay_buffer_config=...)``. ``config`` is changed in place and returned.
    """
    spec = build_module_spec(algo, model, model_config)
    recurrent = BACKBONES[model.lower()].recurrent
    if recurrent and algo.lower() == "dqn":
        _check_sequence_replay(config)
    config.rl_module(rl_module_spec=spec)
    if recurrent:
        # The user's own dict, not `config.model_config`, which also holds the algorithm's auto-included keys.
        own = config_dict(config._model_config)
        config.rl_module(model_config=own | {"max_seq_len": config_dict(spec.model_config)["max_seq_len"]})
    return config


def _check_sequence_replay(config: AlgorithmConfig) -> None:
    buffer_type = getattr(config, "replay_buffer_config", {}).get("type")
    buffer_name = buffer_type if isinstance(buffer_type, str) else getattr(buffer_type, "__name__", "")
    if "Prioritized" in buffer_name:
        raise ModelConfigError(
            f"DQN with a recurrent backbone needs replay_buffer_config type 'EpisodeReplayBuffer'; "
            f"{buffer_name} samples single transitions and cannot train an LSTM on sequences"
        )
