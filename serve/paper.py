"""Would-be performance of a stream's decisions: a paper account marked at each new decision bar.

Live and shadow ensembles get the same account, so their figures compare like for like.  The
account holds the exposure an action implies (weights of net worth per instrument), marks it
from one decision bar's close to the next, and pays the taker fee on every change of weight; it
ignores slippage, impact and minimum order sizes, so it is a yardstick between variants, not a
backtest.  Implied exposure per action scheme:

* ``discrete``: 0 holds; ``1 + 2i`` puts all the cash into instrument ``i``; ``2 + 2i`` sells it;
* ``weights``: positive scores over their sum (the last score is cash); all zero is all cash.

Other schemes are not tracked (``update`` returns None).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np

TRACKED_SCHEMES = ("discrete", "weights")


def implied_weights(scheme: str, action: Any, current: np.ndarray) -> np.ndarray | None:
    """Target weights per instrument after ``action``, or None for schemes that are not tracked."""
    if scheme == "discrete":
        target = current.copy()
        action = int(action)
        if action == 0:
            return target
        index, sell = divmod(action - 1, 2)
        if sell:
            target[index] = 0.0
        else:
            target[index] += max(0.0, 1.0 - float(target.sum()))
        return target
    if scheme == "weights":
        scores = np.clip(np.asarray(action, dtype=np.float64).ravel(), 0.0, None)
        total = scores.sum()
        return scores[:-1] / total if total > 0 else np.zeros(len(current))
    return None


class PaperAccount:
    """One stream's paper exposure and its cumulative log return."""

    def __init__(self, scheme: str, n_instruments: int, fees: Sequence[float]) -> None:
        self.scheme = scheme
        self.weights = np.zeros(n_instruments)
        self.fees = np.asarray(fees, dtype=np.float64)
        self.log_return = 0.0
        self.steps = 0
        self._time: datetime | None = None
        self._closes: np.ndarray | None = None

    @property
    def tracked(self) -> bool:
        return self.scheme in TRACKED_SCHEMES

    def update(self, timestamp: datetime, closes: np.ndarray, action: Any) -> float | None:
        """Mark the exposure to this bar's closes, then trade to the action's; the step's log return."""
        if not self.tracked:
            return None
        step = 0.0
        if self._time is not None and self._closes is not None:
            if timestamp <= self._time:  # the same bar again: no time has passed, keep the exposure
                return 0.0
            growth = closes / self._closes
            gross = 1.0 + float(self.weights @ (growth - 1.0))
            step += math.log(max(gross, 1e-12))
            self.weights = self.weights * growth / max(gross, 1e-12)  # weights drift with prices
        target = implied_weights(self.scheme, action, self.weights)
        if target is not None:
            cost = float(self.fees @ np.abs(target - self.weights))
            step += math.log(max(1.0 - cost, 1e-12))
            self.weights = target
        self._time, self._closes = timestamp, np.asarray(closes, dtype=np.float64).copy()
        self.log_return += step
        self.steps += 1
        return step
