"""Small records passed between action schemes, the broker, the ledger and the rewards.

They are deliberately plain (tuples, small classes): one is created per order
or reused across steps, so they must be cheap to build and to update in the
hot path.
"""

from __future__ import annotations

MARKET = "market"
LIMIT = "limit"

# Order statuses; every order ends in exactly one of the last four.
PENDING = "pending"
FILLED = "filled"
EXPIRED = "expired"
REJECTED = "rejected"
CANCELLED = "cancelled"

MAKER = "maker"
TAKER = "taker"


OrderRequest = tuple[int, float, float | None, int]
"""What an action scheme asks for at the close of a bar: ``(instrument, quantity, limit_price, ttl)``.

``quantity`` is signed, in units of the instrument (positive buys, negative
sells).  ``limit_price`` None means a market order; otherwise the order rests
for ``ttl`` bars and then expires.  A plain tuple, not a NamedTuple, because
schemes build one per instrument per step and a NamedTuple costs several
times more to construct; :func:`market_order` and :func:`limit_order` name
the fields.
"""


def market_order(instrument: int, quantity: float) -> OrderRequest:
    return (instrument, quantity, None, 1)


def limit_order(instrument: int, quantity: float, limit_price: float, ttl: int) -> OrderRequest:
    return (instrument, quantity, limit_price, ttl)


class Order:
    """One order and its outcome: a row of the ledger, updated in place when it fills or ends."""

    # Outcome fields default at class level so creating an order sets only the request fields.
    status: str = PENDING
    reason: str = ""
    fill_bar: int = -1
    filled_quantity: float = 0.0
    fill_price: float = float("nan")
    fee: float = 0.0
    slippage: float = 0.0
    impact: float = 0.0
    realized_pnl: float = 0.0

    def __init__(
        self,
        order_id: int,
        decision_bar: int,
        instrument: int,
        quantity: float,
        limit_price: float | None,
        expiry_bar: int,
    ) -> None:
        self.order_id = order_id
        self.decision_bar = decision_bar
        self.instrument = instrument
        self.quantity = quantity
        self.limit_price = limit_price
        self.expiry_bar = expiry_bar

    @property
    def side(self) -> str:
        return "buy" if self.quantity > 0 else "sell"

    @property
    def order_type(self) -> str:
        return MARKET if self.limit_price is None else LIMIT

    @property
    def liquidity(self) -> str:
        """Maker for limit orders, taker for market orders; empty until filled."""
        if self.status != FILLED:
            return ""
        return TAKER if self.limit_price is None else MAKER

    def __repr__(self) -> str:
        return (
            f"Order(#{self.order_id} {self.side} {abs(self.quantity):.8g} of {self.instrument} "
            f"{self.order_type} @bar {self.decision_bar}: {self.status})"
        )


class StepResult:
    """What happened during one step; reused across steps and read by rewards and the info dict."""

    __slots__ = (
        "bar",
        "fees",
        "filled",
        "impact",
        "net_worth",
        "placed",
        "prev_net_worth",
        "slippage",
        "traded_notional",
        "unfilled",
    )

    def __init__(self) -> None:
        self.bar = 0
        self.net_worth = 0.0
        self.prev_net_worth = 0.0
        self.clear()

    def clear(self) -> None:
        """Zero the per-step counters (net worth fields are set by the environment)."""
        self.fees = 0.0
        self.slippage = 0.0
        self.impact = 0.0
        self.traded_notional = 0.0
        self.placed = 0
        self.filled = 0
        self.unfilled = 0

    @property
    def costs(self) -> float:
        """Fees plus slippage plus impact paid this step, in quote currency."""
        return self.fees + self.slippage + self.impact
