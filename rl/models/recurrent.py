"""LSTM backbone that is stateful across env steps.

Each env step the LSTM consumes only the newest bar's token (the last row of the window block)
plus the portfolio state, and carries ``h``/``c`` to the next step through RLlib's stateful-module
machinery (``get_initial_state``, ``Columns.STATE_IN``/``STATE_OUT``, ``max_seq_len``). The window
is therefore not re-read every step: the memory lives in the recurrent state, not in the input.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from rl.models.base import Backbone, State
from rl.models.config import CommonOptions, ModelConfigError, ObsLayout, positive_int


class LSTMBackbone(Backbone):
    """``[B, T, obs_dim]`` + state -> ``[B, T, out_dim]`` + next state.

    Options: ``lstm_cell_size`` (default 128), ``lstm_num_layers`` (default 1). The state is
    ``{"h": [num_layers, cell], "c": [num_layers, cell]}`` per sample (``[B, num_layers, cell]``
    batched). Without a layout in ``model_config`` the whole observation is fed each step.
    """

    recurrent = True
    layout_required = False

    def __init__(self, layout: ObsLayout, options: CommonOptions, model_config: Mapping[str, Any]) -> None:
        super().__init__(layout, options, model_config)
        self.cell_size = positive_int(model_config, "lstm_cell_size", 128)
        self.num_layers = positive_int(model_config, "lstm_num_layers", 1)
        self.lstm = nn.LSTM(
            layout.token_dim + layout.state_dim,
            self.cell_size,
            num_layers=self.num_layers,
            batch_first=True,
            dropout=options.dropout if self.num_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(options.dropout)
        self.head, self.out_dim = options.mlp(self.cell_size)

    def initial_state(self) -> dict[str, np.ndarray]:
        zeros = np.zeros((self.num_layers, self.cell_size), dtype=np.float32)
        return {"h": zeros, "c": zeros.copy()}

    def forward(self, obs: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        if obs.dim() != 3:
            raise ModelConfigError(
                f"the LSTM backbone needs observations shaped [B, T, obs_dim], got {tuple(obs.shape)}"
            )
        if state is None:
            raise ModelConfigError("the LSTM backbone needs a state dict {'h', 'c'} (Columns.STATE_IN)")
        tokens, portfolio = self.layout.split(obs)
        step_input = torch.cat([tokens[..., -1, :], portfolio], dim=-1)  # newest bar + portfolio
        # torch wants [num_layers, B, cell]; RLlib batches per-sample states as [B, num_layers, cell].
        h_in, c_in = (state[key].transpose(0, 1).contiguous() for key in ("h", "c"))
        sequence, (h_out, c_out) = self.lstm(step_input, (h_in, c_in))
        embedding = self.head(self.dropout(sequence))
        return embedding, {"h": h_out.transpose(0, 1), "c": c_out.transpose(0, 1)}
