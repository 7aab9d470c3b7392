"""Continuous action schemes: target weights, deltas on a base allocation, and limit orders."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

from envs.actions.base import ActionScheme, action_vector, unit_box
from envs.market import MarketRow
from envs.portfolio import Portfolio
from envs.records import OrderRequest, limit_order
from features.data.schema import DataError

_SUM_TOLERANCE = 1e-6


def _check_nonnegative(scheme: str, **values: float) -> None:
    for key, value in values.items():
        if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
            raise DataError(f"action scheme {scheme!r}: {key} must be a number >= 0, got {value!r}")


class TargetWeights(ActionScheme):
    """``Box(-1, 1, N + 1)``: scores for each instrument and, last, for cash -> target portfolio weights.

    Long only, negative scores count as 0 and the weights are the scores over
    their sum (all scores <= 0 means all cash).  With shorts, instrument
    scores keep their sign and are divided by the sum of absolute scores
    (cash score clipped at 0).  Weights are then multiplied by
    ``max_leverage`` and by the sizing fraction.  Changes of weight below
    ``rebalance_threshold`` are not traded.
    """

    name = "weights"

    def __init__(self, rebalance_threshold: float = 0.0, **rules: Any) -> None:
        super().__init__(**rules)
        _check_nonnegative(self.name, rebalance_threshold=rebalance_threshold)
        self.rebalance_threshold = float(rebalance_threshold)

    def _space(self, n_instruments: int) -> spaces.Box:
        return unit_box(n_instruments + 1)

    def target_weights(self, action: Any, market: MarketRow) -> list[float]:
        """Instrument weights (cash is the rest) the action asks for."""
        scores = action_vector(action, self.n_instruments + 1, self.name)
        cash = scores.pop()
        short = self.allow_short
        total = cash if cash > 0.0 else 0.0
        for score in scores:
            if score > 0.0:
                total += score
            elif short:
                total -= score
        if total == 0.0:
            return [0.0] * self.n_instruments
        scale = self.max_leverage / total
        if short:
            return [score * scale * fraction for score, fraction in zip(scores, market.scale, strict=False)]
        return [score * scale * fraction if score > 0.0 else 0.0
                for score, fraction in zip(scores, market.scale, strict=False)]

    def _to_orders(self, action: Any, portfolio: Portfolio, market: MarketRow) -> list[OrderRequest]:
        weights = self.target_weights(action, market)
        return self._rebalance(weights, portfolio, market, self.rebalance_threshold)


class WeightDeltas(ActionScheme):
    """``Box(-1, 1, N)``: adjustments of at most ``max_delta`` to a base allocation.

    The base is ``base_weights`` (one weight per instrument, then cash, summing
    to 1), replaced at run time by :meth:`set_base_weights` (for example by a
    portfolio optimizer); with no base the current portfolio weights are the
    base, so the action is a change in weights.  The result is clipped to long
    only unless shorts are allowed, scaled down to ``max_leverage`` gross, and
    multiplied by the sizing fraction.
    """

    name = "deltas"

    def __init__(
        self,
        base_weights: Sequence[float] | None = None,
        max_delta: float = 0.1,
        rebalance_threshold: float = 0.0,
        **rules: Any,
    ) -> None:
        super().__init__(**rules)
        _check_nonnegative(self.name, max_delta=max_delta, rebalance_threshold=rebalance_threshold)
        self.max_delta = float(max_delta)
        self.rebalance_threshold = float(rebalance_threshold)
        self.base: list[float] | None = None
        self._pending_base = None if base_weights is None else [float(w) for w in base_weights]
        if self._pending_base is not None:
            self._check_base(self._pending_base, len(self._pending_base) - 1)

    def _space(self, n_instruments: int) -> spaces.Box:
        if self._pending_base is not None:
            self.set_base_weights(self._pending_base, n_instruments)
        return unit_box(n_instruments)

    def _check_base(self, weights: list[float], n_instruments: int) -> None:
        if len(weights) != n_instruments + 1:
            raise DataError(f"base weights need {n_instruments + 1} values (each instrument, then cash), "
                            f"got {len(weights)}")
        if any(not math.isfinite(w) for w in weights):
            raise DataError(f"base weights must be finite, got {weights}")
        if not self.allow_short and any(w < 0 for w in weights[:-1]):
            raise DataError(f"base weights {weights} hold a short position but allow_short is off")
        total = sum(weights)
        if abs(total - 1.0) > _SUM_TOLERANCE:
            raise DataError(f"base weights {weights} sum to {total:.6g}; they must sum to 1 (instruments, then cash)")

    def set_base_weights(self, weights: Sequence[float], n_instruments: int | None = None) -> None:
        """Set the allocation the actions adjust: one weight per instrument, then cash, summing to 1."""
        values = [float(w) for w in weights]
        self._check_base(values, n_instruments if n_instruments is not None else self.n_instruments)
        self.base = values[:-1]

    def target_weights(self, action: Any, portfolio: Portfolio, market: MarketRow) -> list[float]:
        deltas = action_vector(action, self.n_instruments, self.name)
        base = self.base if self.base is not None else portfolio.weights(market.close)
        weights = self._project([b + self.max_delta * d for b, d in zip(base, deltas, strict=True)])
        return [w * f for w, f in zip(weights, market.scale, strict=True)]

    def _to_orders(self, action: Any, portfolio: Portfolio, market: MarketRow) -> list[OrderRequest]:
        weights = self.target_weights(action, portfolio, market)
        return self._rebalance(weights, portfolio, market, self.rebalance_threshold)


class LimitOrders(ActionScheme):
    """``Box(-1, 1, 2N)``: per instrument a signed size and a limit offset.

    Size ``s``: ``|s| < deadband`` places nothing; otherwise buy (``s > 0``) or
    sell ``|s| * max_fraction`` of net worth (buys scaled by the sizing
    fraction; sells never below flat unless shorts are allowed).  Offset
    ``o`` maps to ``(o + 1) / 2 * max_offset``: a buy limit at
    ``close * (1 - offset)``, a sell at ``close * (1 + offset)``.  Orders rest
    for ``ttl_bars`` bars, then expire; a new order on an instrument cancels
    the one resting there.
    """

    name = "limit"

    def __init__(
        self,
        max_fraction: float = 1.0,
        max_offset: float = 0.01,
        deadband: float = 0.1,
        ttl_bars: int = 1,
        **rules: Any,
    ) -> None:
        super().__init__(**rules)
        _check_nonnegative(self.name, max_fraction=max_fraction, max_offset=max_offset, deadband=deadband)
        if not 0 < max_fraction <= 1 or max_offset >= 1 or deadband >= 1:
            raise DataError(f"action scheme {self.name!r}: need 0 < max_fraction <= 1, max_offset < 1, "
                            f"deadband < 1; got {max_fraction}, {max_offset}, {deadband}")
        if not isinstance(ttl_bars, int | np.integer) or ttl_bars < 1:
            raise DataError(f"action scheme {self.name!r}: ttl_bars must be an int >= 1, got {ttl_bars!r}")
        self.max_fraction, self.max_offset = float(max_fraction), float(max_offset)
        self.deadband, self.ttl_bars = float(deadband), int(ttl_bars)

    def _space(self, n_instruments: int) -> spaces.Box:
        return unit_box(2 * n_instruments)

    def _to_orders(self, action: Any, portfolio: Portfolio, market: MarketRow) -> list[OrderRequest]:
        values = action_vector(action, 2 * self.n_instruments, self.name)
        orders = []
        for i in range(self.n_instruments):
            size, offset = values[2 * i], (values[2 * i + 1] + 1.0) / 2.0 * self.max_offset
            if abs(size) < self.deadband:
                continue
            price = market.close[i]
            if size > 0:
                quantity = size * self.max_fraction * portfolio.net_worth * market.scale[i] / price
                orders.append(limit_order(i, quantity, price * (1.0 - offset), self.ttl_bars))
                continue
            quantity = size * self.max_fraction * portfolio.net_worth / price
            if not self.allow_short:
                quantity = max(quantity, -max(portfolio.units[i], 0.0))
            if quantity < 0.0:
                orders.append(limit_order(i, quantity, price * (1.0 + offset), self.ttl_bars))
        return orders
