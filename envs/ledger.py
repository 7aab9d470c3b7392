"""Append-only record of every order and its outcome, and the equity curve, of one episode.

The hot path only appends :class:`~envs.records.Order` objects and floats;
tables are built on demand after (or during) an episode.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl

from envs.records import Order
from features.panel import FeaturePanel

LEDGER_COLUMNS: tuple[str, ...] = (
    "order_id", "decision_bar", "decision_time", "instrument", "exchange", "symbol", "side", "order_type",
    "requested_quantity", "limit_price", "expiry_bar", "status", "reason", "fill_bar", "fill_time",
    "filled_quantity", "fill_price", "notional", "fee", "slippage", "impact", "liquidity", "realized_pnl",
)  # fmt: skip


class Ledger:
    """Orders and net worth of one episode; bar indices refer to the environment's panel."""

    def __init__(self, panel: FeaturePanel, start_bar: int = 0) -> None:
        self.panel = panel
        self.orders: list[Order] = []
        self.start_bar = start_bar  # equity[k] is the net worth at the close of bar start_bar + k
        self.equity: list[float] = []

    def new_order(
        self, decision_bar: int, instrument: int, quantity: float, limit_price: float | None, expiry_bar: int
    ) -> Order:
        order = Order(len(self.orders), decision_bar, instrument, quantity, limit_price, expiry_bar)
        self.orders.append(order)
        return order

    @property
    def equity_bars(self) -> np.ndarray:
        return np.arange(self.start_bar, self.start_bar + len(self.equity), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.orders)

    def to_frame(self) -> pl.DataFrame:
        """One row per order with its outcome; columns are :data:`LEDGER_COLUMNS`.

        Quantities are unsigned (``side`` gives the direction); fill columns are
        null for orders that did not fill.
        """
        orders = self.orders
        keys = [self.panel.keys[o.instrument] for o in orders]
        decision = [o.decision_bar for o in orders]
        fill_bars = [o.fill_bar if o.fill_bar >= 0 else None for o in orders]
        filled_qty = [abs(o.filled_quantity) for o in orders]
        fill_price = [o.fill_price if o.fill_bar >= 0 else None for o in orders]
        columns = {
            "order_id": pl.Series([o.order_id for o in orders], dtype=pl.Int64),
            "decision_bar": pl.Series(decision, dtype=pl.Int64),
            "decision_time": self._times(decision),
            "instrument": pl.Series([k.instrument for k in keys], dtype=pl.String),
            "exchange": pl.Series([k.exchange for k in keys], dtype=pl.String),
            "symbol": pl.Series([k.symbol for k in keys], dtype=pl.String),
            "side": pl.Series([o.side for o in orders], dtype=pl.String),
            "order_type": pl.Series([o.order_type for o in orders], dtype=pl.String),
            "requested_quantity": pl.Series([abs(o.quantity) for o in orders], dtype=pl.Float64),
            "limit_price": pl.Series([o.limit_price for o in orders], dtype=pl.Float64),
            "expiry_bar": pl.Series([o.expiry_bar for o in orders], dtype=pl.Int64),
            "status": pl.Series([o.status for o in orders], dtype=pl.String),
            "reason": pl.Series([o.reason for o in orders], dtype=pl.String),
            "fill_bar": pl.Series(fill_bars, dtype=pl.Int64),
            "fill_time": self._times(fill_bars),
            "filled_quantity": pl.Series(filled_qty, dtype=pl.Float64),
            "fill_price": pl.Series(fill_price, dtype=pl.Float64),
            "notional": pl.Series([q * (p or 0.0) for q, p in zip(filled_qty, fill_price, strict=True)],
                                  dtype=pl.Float64),
            "fee": pl.Series([o.fee for o in orders], dtype=pl.Float64),
            "slippage": pl.Series([o.slippage for o in orders], dtype=pl.Float64),
            "impact": pl.Series([o.impact for o in orders], dtype=pl.Float64),
            "liquidity": pl.Series([o.liquidity for o in orders], dtype=pl.String),
            "realized_pnl": pl.Series([o.realized_pnl for o in orders], dtype=pl.Float64),
        }
        return pl.DataFrame(columns).select(LEDGER_COLUMNS)

    def fills_frame(self) -> pl.DataFrame:
        """Only the orders that filled."""
        return self.to_frame().filter(pl.col("status") == "filled")

    def _times(self, bars: list[int] | list[int | None]) -> pl.Series:
        """Bar open times of the given bar indices; None stays null."""
        index = np.array([b if b is not None else 0 for b in bars], dtype=np.int64)
        stamps = self.panel.timestamps[index].astype("datetime64[us]")
        stamps[np.array([b is None for b in bars], dtype=bool)] = np.datetime64("NaT")
        return pl.Series(stamps).cast(pl.Datetime("us", "UTC"))

    def equity_curve(self) -> pd.Series:
        """Net worth at each bar close of the episode, indexed by the bar's open time (UTC)."""
        stamps = self.panel.timestamps[self.equity_bars]
        index = pd.DatetimeIndex(stamps.astype("datetime64[us]"), name="timestamp").tz_localize("UTC")
        return pd.Series(np.asarray(self.equity, dtype=np.float64), index=index, name="net_worth")

    def equity_frame(self) -> pl.DataFrame:
        bars = self.equity_bars
        return pl.DataFrame({"bar": bars, "timestamp": self._times(bars.tolist()), "net_worth": self.equity})

    def totals(self) -> dict[str, float]:
        """Episode totals: fees, slippage, impact, traded notional and order counts by status."""
        out = {"fees": 0.0, "slippage": 0.0, "impact": 0.0, "traded_notional": 0.0, "orders": float(len(self))}
        for order in self.orders:
            out["fees"] += order.fee
            out["slippage"] += order.slippage
            out["impact"] += order.impact
            if order.fill_bar >= 0:
                out["traded_notional"] += abs(order.filled_quantity) * order.fill_price
            out[order.status] = out.get(order.status, 0.0) + 1.0
        return out
