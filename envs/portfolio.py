"""Cash, units per instrument and their average entry prices; net worth at the close.

Net worth is defined as ``cash + sum(units * close)``: positions are marked at
the bar's close, shorts as negative units.  Quantities are Python floats in
lists because the portfolio is touched every step for one to a few
instruments, where list arithmetic beats numpy's per-call overhead.
"""

from __future__ import annotations

from operator import mul

import numpy as np


class Portfolio:
    """The account of one episode."""

    __slots__ = ("cash", "entry", "last_trade_bar", "net_worth", "single", "start_bar", "units")

    def __init__(self, n_instruments: int, cash: float, bar: int = 0) -> None:
        self.cash = float(cash)
        self.units = [0.0] * n_instruments
        self.single = n_instruments == 1  # one instrument: skip the per-element list machinery
        self.entry = [0.0] * n_instruments  # average entry price of the open position
        self.net_worth = float(cash)
        self.start_bar = bar
        self.last_trade_bar = bar  # no trade yet: count from the episode start

    def apply_fill(self, instrument: int, quantity: float, price: float, fee: float, bar: int) -> float:
        """Book a fill of signed ``quantity`` at ``price`` paying ``fee``; returns the realised PnL.

        Realised PnL (before fees) is booked on the part of the fill that
        reduces the position, against the average entry price.
        """
        held = self.units[instrument]
        after = held + quantity
        realized = 0.0
        if held == 0.0:
            self.entry[instrument] = price
        elif (held > 0.0) == (quantity > 0.0):  # growing: the entry is the size-weighted mean price
            self.entry[instrument] = (self.entry[instrument] * held + price * quantity) / after
        else:
            entry = self.entry[instrument]
            long = held > 0.0
            realized = min(-quantity, held) * (price - entry) if long else min(quantity, -held) * (entry - price)
            if after == 0.0:
                self.entry[instrument] = 0.0
            elif (after > 0.0) != (held > 0.0):  # flipped: the remainder opened at this price
                self.entry[instrument] = price
        self.units[instrument] = after
        # Buying: cash - notional - fee, evaluated left to right so a buy sized to spend all cash ends at 0.0.
        self.cash = self.cash - quantity * price - fee
        self.last_trade_bar = bar
        return realized

    def mark(self, close: list[float]) -> float:
        """Net worth at the given close prices (also kept in ``net_worth``)."""
        value = self.cash + (self.units[0] * close[0] if self.single else sum(map(mul, self.units, close)))
        self.net_worth = value
        return value

    def weights(self, close: list[float]) -> list[float]:
        """Signed value of each position as a fraction of net worth."""
        scale = 1.0 / self.net_worth if self.net_worth > 0 else 0.0
        return [held * price * scale for held, price in zip(self.units, close, strict=True)]

    def gross_exposure(self, prices: list[float]) -> float:
        return sum(abs(held) * price for held, price in zip(self.units, prices, strict=True))

    def value_at(self, prices: list[float]) -> float:
        return self.cash + sum(held * price for held, price in zip(self.units, prices, strict=True))

    def state(self, close: list[float], bar: int, window: int) -> list[float]:
        """Portfolio part of the observation: weights, cash share, unrealised PnL shares, time since trade.

        See :mod:`envs.observation` for the layout.
        """
        scale = 1.0 / self.net_worth if self.net_worth > 0 else 0.0
        idle = bar - self.last_trade_bar
        units = self.units
        if self.single:
            held, price = units[0], close[0]
            return [held * price * scale, self.cash * scale, held * (price - self.entry[0]) * scale,
                    idle / (idle + window)]
        # Plain loops: comprehensions and strict zips cost more than the arithmetic for a few instruments.
        entry = self.entry
        out: list[float] = []
        pnl: list[float] = []
        add_weight, add_pnl = out.append, pnl.append
        for i in range(len(units)):
            held, price = units[i], close[i]
            add_weight(held * price * scale)
            add_pnl(held * (price - entry[i]) * scale)
        out.append(self.cash * scale)
        out += pnl
        out.append(idle / (idle + window))
        return out

    def positions(self) -> np.ndarray:
        return np.array(self.units)
