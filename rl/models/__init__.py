"""Torch backbones and RLModules for the flat trading observation (window block + portfolio state)."""

from rl.models.actor_critic import ActorCriticModule
from rl.models.backbones import BACKBONES, build_backbone
from rl.models.base import Backbone
from rl.models.config import ModelConfigError, ObsLayout
from rl.models.q_network import QNetworkModule
from rl.models.registry import build_module_spec, configure_model

__all__ = [
    "BACKBONES",
    "ActorCriticModule",
    "Backbone",
    "ModelConfigError",
    "ObsLayout",
    "QNetworkModule",
    "build_backbone",
    "build_module_spec",
    "configure_model",
]
