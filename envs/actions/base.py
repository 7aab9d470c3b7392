"""The action-scheme interface and the order arithmetic shared by every scheme.

A scheme owns two things: the gymnasium action space, and the translation of
one action, taken at the close of bar ``t``, into order requests that the
broker fills on bar ``t + 1``.  Quantities are computed at the decision bar's
close; the broker later scales buys down to what cash (or the leverage limit)
allows at the actual fill price.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces

from envs.market import MarketRow
from envs.portfolio import Portfolio
from envs.records import OrderRequest, market_order
from features.data.schema import DataError


class ActionScheme(ABC):
    """Action space plus action -> orders.  Subclasses implement ``_space`` and ``_to_orders``."""

    name: ClassVar[str]

    def __init__(self, *, allow_short: bool = False, max_leverage: float = 1.0) -> None:
        self.allow_short = allow_short
        self.max_leverage = max_leverage
        self.n_instruments = 0

    def space(self, n_instruments: int) -> spaces.Space[Any]:
        """The action space for ``n_instruments`` instruments (also fixes the scheme's size)."""
        if n_instruments < 1:
            raise DataError(f"action scheme {self.name!r} needs at least one instrument")
        self.n_instruments = n_instruments
        return self._space(n_instruments)

    def to_orders(self, action: Any, portfolio: Portfolio, market: MarketRow) -> list[OrderRequest]:
        """Orders for ``action`` at the close of ``market.bar`` (the broker drops those below the venue minimum)."""
        return self._to_orders(action, portfolio, market)

    @abstractmethod
    def _space(self, n_instruments: int) -> spaces.Space[Any]: ...

    @abstractmethod
    def _to_orders(self, action: Any, portfolio: Portfolio, market: MarketRow) -> list[OrderRequest]: ...

    # Shared order arithmetic -------------------------------------------------------------------

    def _quantity_for_weight(self, instrument: int, weight: float, portfolio: Portfolio, market: MarketRow) -> float:
        """Signed units that move ``instrument`` to ``weight`` of net worth (exactly flat for weight 0)."""
        held = portfolio.units[instrument]
        if weight == 0.0:
            return -held
        price = market.close[instrument]
        return (weight * portfolio.net_worth - held * price) / price

    def _sized_trade(
        self, instrument: int, fraction: float, buy: bool, portfolio: Portfolio, market: MarketRow
    ) -> list[OrderRequest]:
        """Buy or sell ``fraction`` of net worth of one instrument (buys scaled by the sizing rule)."""
        price = market.close[instrument]
        if buy:
            quantity = fraction * portfolio.net_worth * market.scale[instrument] / price
        else:
            quantity = -fraction * portfolio.net_worth / price
            if not self.allow_short:
                quantity = max(quantity, -max(portfolio.units[instrument], 0.0))
        return [market_order(instrument, quantity)] if quantity != 0.0 else []

    def _rebalance(
        self, weights: Sequence[float], portfolio: Portfolio, market: MarketRow, threshold: float = 0.0
    ) -> list[OrderRequest]:
        """Orders that move every instrument to its target weight, skipping changes below ``threshold``.

        A target of 0 always closes the position exactly (no dust left behind).
        """
        net_worth, units, close = portfolio.net_worth, portfolio.units, market.close
        minimum = threshold * net_worth
        orders: list[OrderRequest] = []
        add = orders.append
        for i in range(len(units)):  # indexing beats zip/enumerate unpacking for a handful of instruments
            weight, held = weights[i], units[i]
            if weight == 0.0:
                if held != 0.0:
                    add((i, -held, None, 1))
                continue
            price = close[i]
            change = weight * net_worth - held * price
            if change > minimum or -change > minimum:
                add((i, change / price, None, 1))  # a market order, see records.OrderRequest
        return orders

    def _project(self, weights: list[float]) -> list[float]:
        """Clip shorts away when not allowed and scale gross exposure down to ``max_leverage``."""
        if not self.allow_short:
            weights = [max(w, 0.0) for w in weights]
        gross = sum(abs(w) for w in weights)
        if gross > self.max_leverage:
            scale = self.max_leverage / gross
            weights = [w * scale for w in weights]
        return weights


def action_vector(action: Any, size: int, scheme: str) -> list[float]:
    """A flat list of ``size`` finite floats clipped to [-1, 1]; raises on the wrong shape or NaN."""
    if isinstance(action, np.ndarray) and action.ndim == 1:
        values = action.tolist()
    else:
        values = np.asarray(action, dtype=np.float64).ravel().tolist()
    if len(values) != size:
        raise DataError(f"action scheme {scheme!r} expects {size} numbers, got {np.shape(action)}")
    out = [1.0 if value > 1.0 else -1.0 if value < -1.0 else value for value in values]
    total = sum(out)
    if total != total:  # NaN survives the clipping above and poisons the sum
        raise DataError(f"action scheme {scheme!r}: action holds NaN: {values}")
    return out


def unit_box(size: int) -> spaces.Box:
    return spaces.Box(low=-1.0, high=1.0, shape=(size,), dtype=np.float32)
