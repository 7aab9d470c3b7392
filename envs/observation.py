"""The observation layout: one flat float32 vector that every model family can reshape.

An observation is ``concat(market.ravel(), portfolio)`` where

* ``market`` is ``[window, N, F]``: the features of the last ``window`` bars,
  oldest first, the newest row being the decision bar; instruments in the
  order of ``EnvConfig.instruments`` (or the panel's), features in the
  panel's order;
* ``portfolio`` is ``[2N + 2]``: the weight of each position in net worth
  (negative when short), the cash share, the unrealised PnL of each position
  as a share of net worth, and the time since the last fill
  ``k / (k + window)`` for ``k`` bars (0 right after a fill, towards 1 when idle).

An MLP takes the vector as is; a CNN, LSTM or attention model calls
:meth:`ObservationLayout.split` (works on numpy arrays and torch tensors, with
any leading batch dimensions) and reads ``market`` as ``window`` time steps of
``N * F`` channels or tokens, with the portfolio vector alongside.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ObservationLayout:
    window: int
    instruments: tuple[str, ...]
    feature_names: tuple[str, ...]

    @property
    def n_instruments(self) -> int:
        return len(self.instruments)

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def market_shape(self) -> tuple[int, int, int]:
        return (self.window, self.n_instruments, self.n_features)

    @property
    def market_size(self) -> int:
        return self.window * self.n_instruments * self.n_features

    @property
    def portfolio_names(self) -> tuple[str, ...]:
        weights = tuple(f"weight[{name}]" for name in self.instruments)
        pnl = tuple(f"unrealised_pnl[{name}]" for name in self.instruments)
        return (*weights, "cash_share", *pnl, "time_since_trade")

    @property
    def portfolio_size(self) -> int:
        return 2 * self.n_instruments + 2

    @property
    def size(self) -> int:
        return self.market_size + self.portfolio_size

    def split(self, obs: Any) -> tuple[Any, Any]:
        """``(market [..., window, N, F], portfolio [..., 2N + 2])`` from observations ``[..., size]``."""
        batch = tuple(obs.shape[:-1])
        if obs.shape[-1] != self.size:
            raise ValueError(f"observation has {obs.shape[-1]} values, layout expects {self.size}")
        market = obs[..., : self.market_size].reshape(*batch, *self.market_shape)
        return market, obs[..., self.market_size :]

    def tokens(self, obs: Any) -> tuple[Any, Any]:
        """``(market [..., window, N * F], portfolio)``: one token per bar for sequence models."""
        market, portfolio = self.split(obs)
        batch = tuple(obs.shape[:-1])
        return market.reshape(*batch, self.window, self.n_instruments * self.n_features), portfolio


def split_observation(obs: Any, layout: ObservationLayout) -> tuple[Any, Any]:
    """Module-level form of :meth:`ObservationLayout.split`."""
    return layout.split(obs)
