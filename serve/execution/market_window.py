"""The recent bars of every instrument, as the environment's :class:`~envs.market.MarketData`.

Live and replayed trading sees bars one at a time; the environment's broker, action schemes and
sizing rules read precomputed per-bar rows (close, fill prices, slippage and impact factors,
sizing fractions).  :class:`BarWindow` keeps the last ``capacity`` bars and rebuilds those rows
after each new bar, so the paper broker fills and the actor sizes orders with exactly the
environment's code.

Bars are numbered from the first history bar (index 0), so an order's decision and expiry bars
and the portfolio's "bars since the last trade" count the same way as in a backtest.  Rolling
cost and sizing estimates use the bars in the window only: handed the same history as a backtest
starts with, they equal the backtest's to the last bit until the window is full; after that the
rolling windows are full either way and agree to float rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np

from envs.config import CostConfig
from envs.episodes import sizing_fractions
from envs.market import MarketData
from envs.sizing import SizingRule
from features.data.schema import BarKey, DataError
from features.panel import OHLCV_FIELDS, FeaturePanel

DEFAULT_CAPACITY = 2048


def as_datetime64(moment: datetime | np.datetime64) -> np.datetime64:
    """Naive-UTC microseconds, the panel's time type."""
    if isinstance(moment, datetime):
        return np.datetime64(moment.astimezone(UTC).replace(tzinfo=None), "us")
    return moment.astype("datetime64[us]")


class BarWindow:
    """The last bars of ``keys`` (aligned: one row holds every instrument's bar of one time)."""

    def __init__(
        self,
        keys: Sequence[BarKey],
        costs: CostConfig,
        sizing: SizingRule,
        history: np.ndarray | None = None,
        times: Sequence[np.datetime64] | np.ndarray = (),
        capacity: int = DEFAULT_CAPACITY,
    ) -> None:
        self.keys, self.costs, self.sizing = tuple(keys), costs, sizing
        needed = max(costs.vol_lookback, costs.volume_lookback, getattr(sizing, "lookback", 1)) + 2
        self.capacity = max(int(capacity), needed)
        shape = (0, len(self.keys), len(OHLCV_FIELDS))
        rows = np.empty(shape) if history is None else np.asarray(history, dtype=np.float64)
        if rows.ndim != 3 or rows.shape[1:] != shape[1:]:
            raise DataError(f"history bars have shape {rows.shape}, expected (T, {len(self.keys)}, 5)")
        self._rows = [row for row in rows]
        self._times = list(np.asarray(times, dtype="datetime64[us]"))
        if len(self._times) != len(self._rows):
            raise DataError(f"{len(self._rows)} history bars but {len(self._times)} timestamps")
        self.count = len(self._rows)  # bars seen, history included: the next bar gets this index
        self._trim()
        self._market: MarketData | None = None

    @property
    def instruments(self) -> tuple[str, ...]:
        return tuple(key.instrument for key in self.keys)

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def offset(self) -> int:
        """Absolute index of the oldest bar held."""
        return self.count - len(self._rows)

    @property
    def last_index(self) -> int:
        """Absolute index of the newest bar (-1 before any)."""
        return self.count - 1

    @property
    def times(self) -> list[np.datetime64]:
        return list(self._times)

    @property
    def last_time(self) -> np.datetime64 | None:
        return self._times[-1] if self._times else None

    def append(self, time: datetime | np.datetime64, ohlcv: np.ndarray) -> int:
        """Add the bar row of ``time`` ([N, 5]: open, high, low, close, volume); returns its index."""
        stamp = as_datetime64(time)
        row = np.asarray(ohlcv, dtype=np.float64)
        if row.shape != (len(self.keys), len(OHLCV_FIELDS)):
            raise DataError(f"a bar row has shape {row.shape}, expected ({len(self.keys)}, 5)")
        if self._times and stamp <= self._times[-1]:
            raise DataError(f"bar at {stamp} is not after the last one ({self._times[-1]})")
        self._rows.append(row)
        self._times.append(stamp)
        self.count += 1
        self._trim()
        self._market = None
        return self.count - 1

    def _trim(self) -> None:
        excess = len(self._rows) - self.capacity
        if excess > 0:
            del self._rows[:excess]
            del self._times[:excess]

    @property
    def market(self) -> MarketData:
        """The environment's market arrays over the bars held (rebuilt once per new bar)."""
        if self._market is None:
            if not self._rows:
                raise DataError("no bars yet: the market window is empty")
            ohlcv = np.stack(self._rows)
            panel = FeaturePanel(np.array(self._times), self.keys, (), np.zeros((*ohlcv.shape[:2], 0),
                                 dtype=np.float32), ohlcv)
            self._market = MarketData.build(panel, self.costs, sizing_fractions(panel, self.sizing), self.offset)
        return self._market

    def local(self, index: int) -> int:
        """Row of absolute bar ``index`` in :attr:`market`."""
        row = index - self.offset
        if not 0 <= row < len(self._rows):
            raise DataError(f"bar {index} is no longer (or not yet) in the market window "
                            f"[{self.offset}, {self.count})")
        return row

    def close(self, index: int | None = None) -> list[float]:
        return self.market.close_rows[self.local(self.last_index if index is None else index)]

    def scale(self, index: int | None = None) -> list[float]:
        return self.market.scale_rows[self.local(self.last_index if index is None else index)]

    def state(self) -> dict[str, object]:
        """JSON-safe copy of the bars held and the count (for a broker's durable snapshot)."""
        return {"count": self.count, "times": [str(t) for t in self._times],
                "rows": [row.tolist() for row in self._rows]}

    def restore(self, state: dict[str, object]) -> None:
        times = [np.datetime64(str(t), "us") for t in state["times"]]  # type: ignore[attr-defined]
        self._rows = [np.asarray(r, dtype=np.float64) for r in state["rows"]]  # type: ignore[attr-defined]
        self._times, self.count, self._market = times, int(state["count"]), None  # type: ignore[call-overload]
