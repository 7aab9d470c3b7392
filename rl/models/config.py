"""Shared model configuration: the observation layout and the options every backbone takes.

The trading env emits a flat float32 vector: ``window * token_dim`` market values (a
``[window, token_dim]`` block, oldest bar first, newest bar last) followed by ``state_dim``
portfolio-state values. Models get the three sizes through ``model_config`` and split the
vector themselves with :meth:`ObsLayout.split`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import torch
from torch import nn

LAYOUT_KEYS = ("window", "token_dim", "state_dim")

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "elu": nn.ELU,
    "silu": nn.SiLU,
    "leaky_relu": nn.LeakyReLU,
}


class ModelConfigError(ValueError):
    """A model config or space that a model cannot be built from; the message names the key."""


@dataclass(frozen=True)
class ObsLayout:
    """Sizes of the two parts of the flat observation."""

    window: int
    token_dim: int
    state_dim: int

    def __post_init__(self) -> None:
        if self.window < 1 or self.token_dim < 1 or self.state_dim < 0:
            raise ModelConfigError(
                f"observation layout needs window >= 1, token_dim >= 1 and state_dim >= 0; got "
                f"window={self.window}, token_dim={self.token_dim}, state_dim={self.state_dim}"
            )

    @property
    def market_dim(self) -> int:
        return self.window * self.token_dim

    @property
    def obs_dim(self) -> int:
        return self.market_dim + self.state_dim

    @classmethod
    def from_config(
        cls, model_config: Mapping[str, Any], obs_space: gym.Space, *, required: bool
    ) -> ObsLayout:
        """Read the layout from ``model_config`` and check it against the observation space.

        With ``required=False`` and none of the layout keys given, the whole observation is
        treated as one token (window=1, state_dim=0), so the model also runs on generic envs.
        """
        obs_dim = flat_obs_dim(obs_space)
        given = [key for key in LAYOUT_KEYS if model_config.get(key) is not None]
        if not given and not required:
            return cls(window=1, token_dim=obs_dim, state_dim=0)
        missing = [key for key in LAYOUT_KEYS if key not in given]
        if missing:
            raise ModelConfigError(f"model_config is missing observation layout key(s) {missing}")
        layout = cls(
            window=int(model_config["window"]),
            token_dim=int(model_config["token_dim"]),
            state_dim=int(model_config["state_dim"]),
        )
        if layout.obs_dim != obs_dim:
            raise ModelConfigError(
                f"observation layout window*token_dim+state_dim = {layout.window}*{layout.token_dim}"
                f"+{layout.state_dim} = {layout.obs_dim} does not match the observation size {obs_dim}"
            )
        return layout

    def split(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[..., obs_dim]`` -> tokens ``[..., window, token_dim]`` and state ``[..., state_dim]``."""
        if obs.shape[-1] != self.obs_dim:
            raise ModelConfigError(f"observation has {obs.shape[-1]} values, layout expects {self.obs_dim}")
        lead = obs.shape[:-1]
        tokens = obs[..., : self.market_dim].reshape(*lead, self.window, self.token_dim)
        return tokens, obs[..., self.market_dim :]


def config_dict(model_config: Any) -> dict[str, Any]:
    """An RLModule's ``model_config`` (dict, RLlib dataclass or None) as a plain dict."""
    if model_config is None:
        return {}
    if dataclasses.is_dataclass(model_config) and not isinstance(model_config, type):
        return dataclasses.asdict(model_config)
    return dict(model_config)


def require_space(space: gym.Space | None, what: str) -> gym.Space:
    if space is None:
        raise ModelConfigError(f"the {what} space is not set; RLlib fills it from the env")
    return space


def flat_obs_dim(obs_space: gym.Space) -> int:
    """Size of a 1-D Box observation space; anything else is rejected."""
    if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1:
        raise ModelConfigError(f"models need a flat 1-D Box observation space, got {obs_space}")
    return int(obs_space.shape[0])


@dataclass(frozen=True)
class CommonOptions:
    """Options every backbone accepts: MLP sizes after feature extraction, activation, dropout."""

    hidden: tuple[int, ...]
    activation: str
    dropout: float

    @classmethod
    def from_config(cls, model_config: Mapping[str, Any]) -> CommonOptions:
        hidden = tuple(int(size) for size in model_config.get("hidden", (256, 256)))
        activation = str(model_config.get("activation", "relu"))
        dropout = float(model_config.get("dropout", 0.0))
        if any(size < 1 for size in hidden):
            raise ModelConfigError(f"model_config['hidden'] sizes must be >= 1, got {list(hidden)}")
        if activation not in ACTIVATIONS:
            raise ModelConfigError(
                f"model_config['activation']={activation!r} is unknown; choose from {sorted(ACTIVATIONS)}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ModelConfigError(f"model_config['dropout'] must be in [0, 1), got {dropout}")
        return cls(hidden=hidden, activation=activation, dropout=dropout)

    def mlp(self, in_dim: int) -> tuple[nn.Sequential, int]:
        """Linear -> activation -> dropout stack over ``self.hidden``; returns it and its output size."""
        return make_mlp(in_dim, self.hidden, self.activation, self.dropout)


def make_mlp(in_dim: int, sizes: Sequence[int], activation: str, dropout: float) -> tuple[nn.Sequential, int]:
    layers: list[nn.Module] = []
    for size in sizes:
        layers += [nn.Linear(in_dim, size), ACTIVATIONS[activation]()]
        if dropout > 0.0:
            layers.append(nn.Dropout(dropout))
        in_dim = size
    return nn.Sequential(*layers), in_dim


def positive_int(model_config: Mapping[str, Any], key: str, default: int) -> int:
    value = int(model_config.get(key, default))
    if value < 1:
        raise ModelConfigError(f"model_config['{key}'] must be >= 1, got {value}")
    return value
