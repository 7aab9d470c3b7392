"""Rule-based baselines: buy and hold, equal weight, moving-average crossover, Donchian trend
following with volatility targeting, and z-score mean reversion.

Every rule is computed from closes (and highs and lows) up to the decision bar with pandas
rolling windows; see docs/evaluation.md for the rules and their default parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from features.data.schema import DataError
from rl.baselines.base import Baseline, SignalContext, bars_in, hold_state

CLOSE, HIGH, LOW = 3, 1, 2


class BuyAndHold(Baseline):
    """Buy at the first decision and never trade again: all in one instrument, or equal parts of all."""

    name = "buy_and_hold"

    def __init__(self, instrument: str | int | None = None) -> None:
        super().__init__()
        self.instrument = instrument

    def _column(self, context: SignalContext) -> int | None:
        if self.instrument is None:
            return None
        if isinstance(self.instrument, int):
            if not 0 <= self.instrument < context.n_instruments:
                raise DataError(f"buy_and_hold: instrument index {self.instrument} is outside the panel's "
                                f"{context.n_instruments} instruments")
            return self.instrument
        names = [name.lower() for name in context.panel.instruments]
        if self.instrument.lower() not in names:
            raise DataError(f"buy_and_hold: unknown instrument {self.instrument!r}; the panel has "
                            f"{', '.join(context.panel.instruments)}")
        return names.index(self.instrument.lower())

    def weights(self, context: SignalContext) -> np.ndarray:
        n, column = context.n_instruments, self._column(context)
        weights = np.full((context.panel.n_bars, n), 1.0 / n)
        if column is not None:
            weights[:] = 0.0
            weights[:, column] = 1.0
        return weights


class EqualWeight(Baseline):
    """1/N of net worth in every instrument; held, or rebalanced back to 1/N every ``rebalance_days``."""

    name = "equal_weight"

    def __init__(self, rebalance_days: float | None = None) -> None:
        super().__init__()
        if rebalance_days is not None:
            bars_in(rebalance_days, "1d")  # validates the period
            self.name = "equal_weight_rebalanced"
        self.rebalance_days = rebalance_days

    def weights(self, context: SignalContext) -> np.ndarray:
        return np.full((context.panel.n_bars, context.n_instruments), 1.0 / context.n_instruments)


def _positive_bars(name: str, **values: int) -> None:
    for key, value in values.items():
        if not (isinstance(value, int | np.integer) and value >= 1):
            raise DataError(f"{name}: {key} must be a whole number of bars >= 1, got {value!r}")


class MovingAverageCrossover(Baseline):
    """Long (1/N of net worth) while the ``fast``-bar mean close is above the ``slow``-bar one, else flat."""

    name = "ma_crossover"

    def __init__(self, fast: int = 50, slow: int = 200) -> None:
        super().__init__()
        _positive_bars(self.name, fast=fast, slow=slow)
        if fast >= slow:
            raise DataError(f"ma_crossover: fast ({fast}) must be shorter than slow ({slow})")
        self.fast, self.slow = int(fast), int(slow)

    def weights(self, context: SignalContext) -> np.ndarray:
        close = context.frame(CLOSE)
        fast = close.rolling(self.fast).mean()
        slow = close.rolling(self.slow).mean()
        long = (fast > slow).to_numpy(dtype=np.float64)  # NaN comparisons (warm-up) are False: flat
        return context.tail(long) / context.n_instruments


class DonchianTrend(Baseline):
    """An ensemble of Donchian-channel breakouts, sized by volatility targeting.

    For each look-back of ``lookback_days``: enter long when the close rises above the highest
    high of the previous n bars, exit when it falls below the channel's midpoint ((highest high +
    lowest low) / 2 of the previous n bars).  The signal of an instrument is the share of
    look-backs that are long; its weight is signal x min(``max_weight``, ``vol_target`` /
    realised annual volatility over ``vol_days``) / N, the volatility scale being refreshed at
    the start of each ``rebalance_days`` period (entries and exits trade at once).
    """

    name = "donchian"

    def __init__(
        self,
        lookback_days: Sequence[float] = (5, 10, 20, 30, 60, 90, 150, 250, 360),
        vol_target: float = 0.5,
        vol_days: float = 30,
        max_weight: float = 1.0,
        rebalance_days: float = 1.0,
    ) -> None:
        super().__init__()
        if not lookback_days:
            raise DataError("donchian: lookback_days needs at least one look-back")
        if not (vol_target > 0 and 0 < max_weight <= 1):
            raise DataError(f"donchian: need vol_target > 0 and 0 < max_weight <= 1, got {vol_target}, {max_weight}")
        self.lookback_days = tuple(float(d) for d in lookback_days)
        self.vol_target, self.vol_days, self.max_weight = float(vol_target), float(vol_days), float(max_weight)
        self.rebalance_days = float(rebalance_days)

    def signal(self, context: SignalContext) -> pd.DataFrame:
        """Share of the look-backs that are long, per row and instrument."""
        close, high, low = context.frame(CLOSE), context.frame(HIGH), context.frame(LOW)
        total = pd.DataFrame(0.0, index=close.index, columns=close.columns)
        for days in self.lookback_days:
            n = bars_in(days, context.timeframe)
            upper = high.rolling(n).max().shift(1)  # previous n bars: today's high cannot be beaten by today
            lower = low.rolling(n).min().shift(1)
            entries = (close > upper).to_numpy()
            exits = (close < (upper + lower) / 2).to_numpy()
            total += hold_state(entries, exits)
        return total / len(self.lookback_days)

    def volatility_scale(self, context: SignalContext) -> pd.DataFrame:
        """min(max_weight, target / realised vol), refreshed at period starts and held in between."""
        n = bars_in(self.vol_days, context.timeframe)
        log_close = np.log(context.frame(CLOSE))
        vol = log_close.diff().rolling(n).std() * np.sqrt(context.periods_per_year)
        scale = (self.vol_target / vol.where(vol > 0)).clip(upper=self.max_weight).fillna(0.0)
        refresh = context.period_starts(self.rebalance_days)
        return scale.where(np.broadcast_to(refresh[:, None], scale.shape)).ffill().fillna(0.0)

    def weights(self, context: SignalContext) -> np.ndarray:
        weights = self.signal(context) * self.volatility_scale(context) / context.n_instruments
        return context.tail(weights)


class ZScoreReversion(Baseline):
    """Buy a dip: long (1/N) when the close is ``entry`` standard deviations below its ``lookback``-bar
    mean, back to flat once the z-score has recovered above ``-exit``."""

    name = "zscore_reversion"

    def __init__(self, lookback: int = 48, entry: float = 2.0, exit: float = 0.0) -> None:
        super().__init__()
        _positive_bars(self.name, lookback=lookback)
        if lookback < 2 or not entry > exit:
            raise DataError(f"zscore_reversion: need lookback >= 2 and entry > exit, got {lookback}, {entry}, {exit}")
        self.lookback, self.entry, self.exit = int(lookback), float(entry), float(exit)

    def zscore(self, context: SignalContext) -> pd.DataFrame:
        close = context.frame(CLOSE)
        rolling = close.rolling(self.lookback)
        std = rolling.std(ddof=0)
        return (close - rolling.mean()) / std.where(std > 0)

    def weights(self, context: SignalContext) -> np.ndarray:
        z = self.zscore(context)
        state = hold_state((z < -self.entry).to_numpy(), (z > -self.exit).to_numpy())
        return context.tail(state) / context.n_instruments
