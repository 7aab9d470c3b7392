"""Feed-forward backbones: MLP on the flat observation, 1-D CNN and transformer over the window.

Each accepts ``[..., obs_dim]`` and returns ``[..., out_dim]``; each ends in the common ``hidden``
MLP (activation + optional dropout) applied after the portfolio state is appended.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from rl.models.base import FeedForwardBackbone
from rl.models.config import (
    ACTIVATIONS,
    CommonOptions,
    ModelConfigError,
    ObsLayout,
    positive_int,
)

POOLINGS = ("mean", "max", "last")


class MLPBackbone(FeedForwardBackbone):
    """MLP over the whole flattened observation (window block and portfolio state together)."""

    layout_required = False

    def __init__(self, layout: ObsLayout, options: CommonOptions, model_config: Mapping[str, Any]) -> None:
        super().__init__(layout, options, model_config)
        self.net, self.out_dim = options.mlp(layout.obs_dim)

    def embed(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs)


def _pool(sequence: torch.Tensor, pooling: str) -> torch.Tensor:
    """``[N, T, C]`` -> ``[N, C]``."""
    if pooling == "mean":
        return sequence.mean(dim=1)
    if pooling == "max":
        return sequence.amax(dim=1)
    return sequence[:, -1]


def _pooling(model_config: Mapping[str, Any], default: str) -> str:
    pooling = str(model_config.get("pooling", default))
    if pooling not in POOLINGS:
        raise ModelConfigError(
            f"model_config['pooling']={pooling!r} is unknown; choose from {list(POOLINGS)}"
        )
    return pooling


class CNNBackbone(FeedForwardBackbone):
    """1-D convolutions over time (channels = token features), pooled, then portfolio state appended.

    Options: ``conv_channels`` (list, default [32, 32]), ``kernel_size`` (default 3, 'same' padding),
    ``pooling`` ('mean' | 'max' | 'last', default 'mean').
    """

    def __init__(self, layout: ObsLayout, options: CommonOptions, model_config: Mapping[str, Any]) -> None:
        super().__init__(layout, options, model_config)
        channels = [int(c) for c in model_config.get("conv_channels", (32, 32))]
        kernel = positive_int(model_config, "kernel_size", 3)
        if not channels or min(channels) < 1:
            raise ModelConfigError(f"model_config['conv_channels'] needs sizes >= 1, got {channels}")
        self.pooling = _pooling(model_config, "mean")
        layers: list[nn.Module] = []
        in_channels = layout.token_dim
        for out_channels in channels:
            layers += [nn.Conv1d(in_channels, out_channels, kernel, padding="same")]
            layers += [ACTIVATIONS[options.activation]()]
            if options.dropout > 0.0:
                layers.append(nn.Dropout(options.dropout))
            in_channels = out_channels
        self.conv = nn.Sequential(*layers)
        self.head, self.out_dim = options.mlp(in_channels + layout.state_dim)

    def embed(self, obs: torch.Tensor) -> torch.Tensor:
        tokens, portfolio = self.layout.split(obs)
        features = self.conv(tokens.transpose(1, 2)).transpose(1, 2)  # [N, window, channels]
        return self.head(torch.cat([_pool(features, self.pooling), portfolio], dim=-1))


class AttentionBackbone(FeedForwardBackbone):
    """Transformer encoder over the window tokens with learned positional embeddings.

    Options: ``d_model`` (64), ``num_heads`` (4), ``num_layers`` (2), ``ff_dim`` (2*d_model),
    ``pooling`` ('mean' | 'max' | 'last', default 'last': the newest bar's token). ``activation``
    is used in the encoder's feed-forward layers and in the ``hidden`` MLP.
    """

    def __init__(self, layout: ObsLayout, options: CommonOptions, model_config: Mapping[str, Any]) -> None:
        super().__init__(layout, options, model_config)
        d_model = positive_int(model_config, "d_model", 64)
        heads = positive_int(model_config, "num_heads", 4)
        if d_model % heads:
            raise ModelConfigError(f"model_config d_model={d_model} must be divisible by num_heads={heads}")
        self.pooling = _pooling(model_config, "last")
        self.project = nn.Linear(layout.token_dim, d_model)
        self.positions = nn.Parameter(torch.randn(layout.window, d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d_model,
            heads,
            dim_feedforward=positive_int(model_config, "ff_dim", 2 * d_model),
            dropout=options.dropout,
            activation=ACTIVATIONS[options.activation](),
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(
            layer, positive_int(model_config, "num_layers", 2), enable_nested_tensor=False
        )
        self.norm = nn.LayerNorm(d_model)
        self.head, self.out_dim = options.mlp(d_model + layout.state_dim)

    def embed(self, obs: torch.Tensor) -> torch.Tensor:
        tokens, portfolio = self.layout.split(obs)
        encoded = self.norm(self.encoder(self.project(tokens) + self.positions))
        return self.head(torch.cat([_pool(encoded, self.pooling), portfolio], dim=-1))
