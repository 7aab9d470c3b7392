"""Discrete action schemes: all-in/all-out, sized trades, and instrument x size."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

from envs.actions.base import ActionScheme
from envs.market import MarketRow
from envs.portfolio import Portfolio
from envs.records import OrderRequest, market_order
from features.data.schema import DataError

DEFAULT_FRACTIONS: tuple[float, ...] = (0.005, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4)


class DiscreteAllInOut(ActionScheme):
    """``Discrete(1 + 2N)``: 0 holds; ``1 + 2i`` buys instrument ``i`` all in; ``2 + 2i`` sells it all out.

    All in means a target weight equal to the sizing fraction (1.0 by default:
    every unit of cash the fill can pay for).  With ``allow_short`` a sell
    goes all in short (target weight ``-fraction``) instead of flat.  A buy
    never sells and a sell never buys, so repeating an action is a hold.
    """

    name = "discrete"

    def _space(self, n_instruments: int) -> spaces.Discrete:
        return spaces.Discrete(1 + 2 * n_instruments)

    def _to_orders(self, action: Any, portfolio: Portfolio, market: MarketRow) -> list[OrderRequest]:
        choice = int(action)
        if choice == 0:
            return []
        instrument, sell = divmod(choice - 1, 2)
        if sell:
            weight = -market.scale[instrument] if self.allow_short else 0.0
            quantity = self._quantity_for_weight(instrument, weight, portfolio, market)
            return [market_order(instrument, quantity)] if quantity < 0.0 else []
        quantity = self._quantity_for_weight(instrument, market.scale[instrument], portfolio, market)
        return [market_order(instrument, quantity)] if quantity > 0.0 else []


def _check_fractions(name: str, fractions: Sequence[float]) -> tuple[float, ...]:
    values = tuple(float(f) for f in fractions)
    if not values or any(not (math.isfinite(f) and 0.0 < f <= 1.0) for f in values):
        raise DataError(f"action scheme {name!r}: fractions must be in (0, 1], got {list(fractions)}")
    return values


class SizedTrades(ActionScheme):
    """``Discrete(1 + 2KN)`` over K fixed fractions of net worth.

    0 holds; ``1 + i*2K + k`` buys fraction ``k`` of instrument ``i``,
    ``1 + i*2K + K + k`` sells it (a sell never goes below flat unless shorts
    are allowed).  Default fractions: 0.5%, 1%, 5%, 10%, 20%, 30%, 40%.
    """

    name = "sized"

    def __init__(self, fractions: Sequence[float] = DEFAULT_FRACTIONS, **rules: Any) -> None:
        super().__init__(**rules)
        self.fractions = _check_fractions(self.name, fractions)

    def _space(self, n_instruments: int) -> spaces.Space[Any]:
        return spaces.Discrete(1 + 2 * len(self.fractions) * n_instruments)

    def _to_orders(self, action: Any, portfolio: Portfolio, market: MarketRow) -> list[OrderRequest]:
        choice = int(action)
        if choice == 0:
            return []
        instrument, rest = divmod(choice - 1, 2 * len(self.fractions))
        sell, k = divmod(rest, len(self.fractions))
        return self._sized_trade(instrument, self.fractions[k], not sell, portfolio, market)


class InstrumentSize(SizedTrades):
    """``MultiDiscrete([N, 1 + 2K])``: pick an instrument, then 0 (hold), a buy size or a sell size.

    Size ``1 + k`` buys fraction ``k`` of net worth, ``1 + K + k`` sells it.
    """

    name = "multi_discrete"

    def _space(self, n_instruments: int) -> spaces.Space[Any]:
        return spaces.MultiDiscrete(np.array([n_instruments, 1 + 2 * len(self.fractions)], dtype=np.int64))

    def _to_orders(self, action: Any, portfolio: Portfolio, market: MarketRow) -> list[OrderRequest]:
        instrument, size = int(action[0]), int(action[1])
        if size == 0:
            return []
        sell, k = divmod(size - 1, len(self.fractions))
        return self._sized_trade(instrument, self.fractions[k], not sell, portfolio, market)
