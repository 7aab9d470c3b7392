"""The fill simulator: orders decided at the close of bar t fill on bar t + 1 or later, never earlier.

* Market orders fill at the next bar's open plus slippage and impact (see
  :class:`~envs.config.CostConfig`), paying the taker fee.
* A buy limit fills iff the bar's low is at or below the limit, a sell limit
  iff the high is at or above it, at the limit price, or at the open when the
  bar opens through the limit; it pays the maker fee and no slippage.
  Unfilled limit orders rest until their expiry bar and then expire.
* Within a bar, sells fill before buys so that their proceeds can pay for the
  buys (larger sells first, smaller buys first: when cash runs short, the
  largest buy is the one cut).
* The part of an order that reduces a position always fills.  The part that
  grows a position is scaled down so that gross exposure stays within
  ``max_leverage`` times net worth, valued at the bar's open and including
  the fill's own costs; long only with leverage 1 this is exactly "cash never
  goes negative".  Sells below flat are dropped unless shorts are allowed.
* A fill whose notional ends up below the venue minimum is rejected.
"""

from __future__ import annotations

import math
from operator import attrgetter

from envs.config import CostConfig
from envs.ledger import Ledger
from envs.market import MarketData
from envs.portfolio import Portfolio
from envs.records import CANCELLED, EXPIRED, FILLED, REJECTED, Order, OrderRequest, StepResult

# Growing fills are sized a hair below the limit so that rounding can never push cash below zero.
_SAFETY = 1.0 - 1e-12


# Sorting by signed quantity puts sells before buys (largest sells first, smallest buys first) with a C-level key.
_sells_first = attrgetter("quantity")


class Broker:
    """Holds the working orders of one episode and books their fills into the portfolio and ledger."""

    def __init__(self, costs: CostConfig, allow_short: bool, max_leverage: float) -> None:
        self.impact_exponent = costs.impact_exponent
        self.impact_cap = costs.impact_cap
        self.allow_short = allow_short
        self.max_leverage = max_leverage
        self.cash_only = not allow_short and max_leverage == 1.0
        self.pending: list[Order] = []

    def reset(self, market: MarketData, portfolio: Portfolio, ledger: Ledger) -> None:
        self.market, self.portfolio, self.ledger = market, portfolio, ledger
        self.offset = market.offset
        self.pending = []

    def submit(self, requests: list[OrderRequest], bar: int, result: StepResult) -> None:
        """Place orders decided at the close of ``bar`` (a bar of the current market data).

        Requests worth less than the venue minimum at that close are dropped
        without being placed, as an exchange client would refuse to send them.
        A new order on an instrument cancels the order resting there.
        """
        decided = bar + self.offset
        orders, pending = self.ledger.orders, self.pending
        close, minimum = self.market.close_rows[bar], self.market.min_notional
        resting = bool(pending)
        first = next_id = len(orders)
        for instrument, quantity, limit_price, ttl in requests:
            size = quantity if quantity > 0.0 else -quantity
            if size == 0.0 or size * close[instrument] < minimum[instrument]:
                continue
            if resting:
                self._cancel_resting(instrument, result)
            order = Order(next_id, decided, instrument, quantity, limit_price, decided + ttl)
            orders.append(order)
            pending.append(order)
            next_id += 1
        result.placed += next_id - first

    def _cancel_resting(self, instrument: int, result: StepResult) -> None:
        keep = []
        for order in self.pending:
            if order.instrument == instrument:
                order.status, order.reason = CANCELLED, "replaced by a new order"
                result.unfilled += 1
            else:
                keep.append(order)
        self.pending[:] = keep

    def execute(self, bar: int, result: StepResult) -> None:
        """Match every working order against ``bar``: fill, expire or keep it."""
        pending = self.pending
        if len(pending) > 1:
            pending.sort(key=_sells_first)
        market = self.market
        # Cost estimates come from the decision bar (bar - 1): known when a market order was sent.
        opens, highs, lows, slippages, impacts = market.fill_rows[bar]
        cap, exponent = self.impact_cap, self.impact_exponent
        absolute = bar + self.offset
        taker, maker = market.taker, market.maker
        trades: list[tuple[Order, float, float, float, float, float]] = []
        resting = []
        for order in pending:
            i, limit, quantity = order.instrument, order.limit_price, order.quantity
            open_ = opens[i]
            if limit is None:
                slippage = slippages[i]
                impact = (quantity * open_ if quantity > 0.0 else -quantity * open_) * impacts[i]
                if exponent != 1.0:
                    impact **= exponent
                if impact > cap:
                    impact = cap
                move = slippage + impact
                price = open_ * (1.0 + move) if quantity > 0.0 else open_ * (1.0 - move)
                trades.append((order, price, open_, slippage, impact, taker[i]))
            elif quantity > 0.0 and lows[i] <= limit:
                trades.append((order, open_ if open_ < limit else limit, open_, 0.0, 0.0, maker[i]))
            elif quantity < 0.0 and highs[i] >= limit:
                trades.append((order, open_ if open_ > limit else limit, open_, 0.0, 0.0, maker[i]))
            elif absolute >= order.expiry_bar:
                order.status, order.reason = EXPIRED, "limit price not reached"
                result.unfilled += 1
            else:
                resting.append(order)
        self.pending = resting
        if trades:
            self._book(trades, absolute, opens, result)

    def _book(
        self,
        trades: list[tuple[Order, float, float, float, float, float]],
        bar: int,
        opens: list[float],
        result: StepResult,
    ) -> None:
        """Book each matched order, as much of it as the rules allow, at its price (or reject it)."""
        portfolio, minimum, cash_only = self.portfolio, self.market.min_notional, self.cash_only
        apply_fill = portfolio.apply_fill
        fees = slippage_paid = impact_paid = traded = 0.0
        filled = 0
        for order, price, open_, slippage, impact, fee_rate in trades:
            i, wanted = order.instrument, order.quantity
            if not cash_only:
                quantity = self._fillable(i, wanted, price, opens, fee_rate)
            elif wanted < 0.0:  # long only: a sell stops at flat
                held = portfolio.units[i]
                quantity = wanted if wanted >= -held else -held
            else:  # no leverage: a buy stops at zero cash
                cash = portfolio.cash
                room = cash / (price * (1.0 + fee_rate)) * _SAFETY if cash > 0.0 else 0.0
                quantity = wanted if wanted <= room else room
            size = quantity if quantity >= 0.0 else -quantity
            notional = size * price
            if notional == 0.0 or notional < minimum[i]:
                self._reject(order, quantity, result)
                continue
            fee = notional * fee_rate
            order.realized_pnl = apply_fill(i, quantity, price, fee, bar)
            order.status = FILLED
            order.fill_bar = bar
            order.filled_quantity = quantity
            order.fill_price = price
            order.fee = fee
            order.slippage = slipped = size * open_ * slippage
            order.impact = moved = size * open_ * impact
            fees += fee
            slippage_paid += slipped
            impact_paid += moved
            traded += notional
            filled += 1
        result.fees += fees
        result.slippage += slippage_paid
        result.impact += impact_paid
        result.traded_notional += traded
        result.filled += filled

    @staticmethod
    def _reject(order: Order, quantity: float, result: StepResult) -> None:
        order.status = REJECTED
        if quantity != 0.0:
            order.reason = "below the minimum order size after sizing to cash or holdings"
        else:
            order.reason = "no position to sell" if order.quantity < 0.0 else "no cash or margin left"
        result.unfilled += 1

    def _fillable(self, i: int, quantity: float, price: float, opens: list[float], fee_rate: float) -> float:
        """The signed quantity of an order that can fill under the short and leverage rules."""
        held = self.portfolio.units[i]
        # The part of the order that moves the position towards flat.
        reduce = min(quantity, max(-held, 0.0)) if quantity > 0.0 else max(quantity, -max(held, 0.0))
        grow = quantity - reduce
        if grow == 0.0 or (grow < 0.0 and not self.allow_short):
            return reduce
        room = self._growth_room(i, reduce, price, opens, fee_rate)
        return reduce + (grow if abs(grow) <= room else math.copysign(room, grow))

    def _growth_room(self, i: int, reduce: float, price: float, opens: list[float], fee_rate: float) -> float:
        """Units by which instrument ``i`` may grow after ``reduce`` filled, at ``price``."""
        portfolio = self.portfolio
        open_ = opens[i]
        unit_cost = abs(price - open_) + fee_rate * price  # net worth lost per unit traded, marked at the open
        equity = portfolio.value_at(opens) - abs(reduce) * unit_cost
        gross = portfolio.gross_exposure(opens) - abs(reduce) * open_
        room = self.max_leverage * equity - gross
        return max(room, 0.0) / (open_ + self.max_leverage * unit_cost) * _SAFETY

    def close_all(self, result: StepResult) -> None:
        """Expire every working order at the end of an episode."""
        for order in self.pending:
            order.status, order.reason = EXPIRED, "episode ended"
            result.unfilled += 1
        self.pending = []
