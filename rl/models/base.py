"""The backbone interface: observation -> embedding (recurrent backbones also carry a state)."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from rl.models.config import CommonOptions, ObsLayout

State = dict[str, torch.Tensor]


class Backbone(nn.Module, abc.ABC):
    """Observation -> embedding of size ``out_dim``; recurrent ones also carry a state."""

    recurrent: ClassVar[bool] = False
    layout_required: ClassVar[bool] = True

    def __init__(self, layout: ObsLayout, options: CommonOptions, model_config: Mapping[str, Any]) -> None:
        super().__init__()
        self.layout = layout
        self.options = options
        self.out_dim = 0

    @classmethod
    def from_config(cls, obs_space: gym.Space, model_config: Mapping[str, Any]) -> Backbone:
        layout = ObsLayout.from_config(model_config, obs_space, required=cls.layout_required)
        return cls(layout, CommonOptions.from_config(model_config), model_config)

    def initial_state(self) -> dict[str, np.ndarray]:
        """Per-sample initial state (no batch dim); empty for feed-forward backbones."""
        return {}

    @abc.abstractmethod
    def forward(self, obs: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """Return the embedding and the next state (an empty dict when not recurrent)."""


class FeedForwardBackbone(Backbone):
    """Flattens any leading dims, embeds ``[N, obs_dim]``, restores the leading dims."""

    def forward(self, obs: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        lead = obs.shape[:-1]
        embedding = self.embed(obs.reshape(-1, obs.shape[-1]))
        return embedding.reshape(*lead, embedding.shape[-1]), {}

    @abc.abstractmethod
    def embed(self, obs: torch.Tensor) -> torch.Tensor:
        """``[N, obs_dim]`` -> ``[N, out_dim]``."""
