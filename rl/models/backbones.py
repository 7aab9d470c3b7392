"""Backbones by name: ``mlp``, ``cnn``, ``attention`` (feed-forward) and ``lstm`` (recurrent)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym

from rl.models.base import Backbone
from rl.models.config import ModelConfigError
from rl.models.feedforward import AttentionBackbone, CNNBackbone, MLPBackbone
from rl.models.recurrent import LSTMBackbone

BACKBONES: dict[str, type[Backbone]] = {
    "mlp": MLPBackbone,
    "cnn": CNNBackbone,
    "lstm": LSTMBackbone,
    "attention": AttentionBackbone,
}


def backbone_class(name: str) -> type[Backbone]:
    if name not in BACKBONES:
        raise ModelConfigError(f"unknown backbone {name!r}; choose from {sorted(BACKBONES)}")
    return BACKBONES[name]


def build_backbone(name: str, obs_space: gym.Space, model_config: Mapping[str, Any]) -> Backbone:
    """Build the named backbone for ``obs_space`` from ``model_config``."""
    return backbone_class(name).from_config(obs_space, model_config)
