"""Action schemes, chosen by name in :class:`envs.config.EnvConfig`.

=================  ===========================  ===========================================
name               space                        meaning
=================  ===========================  ===========================================
``discrete``       Discrete(1 + 2N)             hold / buy all in / sell all out
``sized``          Discrete(1 + 2KN)            buy or sell a fixed fraction of net worth
``multi_discrete`` MultiDiscrete([N, 1 + 2K])   instrument x size
``weights``        Box(-1, 1, N + 1)            target portfolio weights (instruments, cash)
``deltas``         Box(-1, 1, N)                adjustments to a base allocation
``limit``          Box(-1, 1, 2N)               size and limit-price offset per instrument
=================  ===========================  ===========================================
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from envs.actions.base import ActionScheme, action_vector
from envs.actions.continuous import LimitOrders, TargetWeights, WeightDeltas
from envs.actions.discrete import DEFAULT_FRACTIONS, DiscreteAllInOut, InstrumentSize, SizedTrades
from features.data.schema import DataError

ACTION_SCHEMES: dict[str, type[ActionScheme]] = {
    scheme.name: scheme
    for scheme in (DiscreteAllInOut, SizedTrades, InstrumentSize, TargetWeights, WeightDeltas, LimitOrders)
}


def make_action_scheme(
    name: str, params: Mapping[str, Any] | None = None, *, allow_short: bool = False, max_leverage: float = 1.0
) -> ActionScheme:
    """Build a scheme by name; unknown names and bad parameters raise :class:`DataError`."""
    if name not in ACTION_SCHEMES:
        raise DataError(f"unknown action scheme {name!r}: choose from {', '.join(sorted(ACTION_SCHEMES))}")
    try:
        return ACTION_SCHEMES[name](**dict(params or {}), allow_short=allow_short, max_leverage=max_leverage)
    except TypeError as err:
        raise DataError(f"action scheme {name!r}: bad parameters {dict(params or {})}: {err}") from err


__all__ = [
    "ACTION_SCHEMES",
    "DEFAULT_FRACTIONS",
    "ActionScheme",
    "DiscreteAllInOut",
    "InstrumentSize",
    "LimitOrders",
    "SizedTrades",
    "TargetWeights",
    "WeightDeltas",
    "action_vector",
    "make_action_scheme",
]
