"""Trade ledgers: round-trip trades by FIFO lot matching, traded notional, fill statistics, positions.

A ledger is a polars DataFrame with one row per order event and at least the
columns named by :data:`LEDGER_COLUMNS`.  The conventions assumed here:

* ``side`` is ``"buy"`` or ``"sell"`` (case-insensitive); ``qty`` is a positive
  base-currency quantity (for a fill: the quantity actually filled);
* ``price`` is the executed price, slippage already included; ``fee`` is the fee
  paid in quote currency; ``slippage`` is the slippage cost in quote currency
  (already inside ``price``, carried for cost analysis only);
* a row whose ``status`` is in :data:`FILL_STATUSES` is a fill; every other row
  (rejected, cancelled, expired, ...) is an order that did not trade.

Round trips pair fills per instrument first-in first-out, long and short alike:
a fill first closes open lots of the opposite direction, oldest first, and any
remaining quantity opens a new lot.  Each matched piece is one round trip whose
fees are the pro-rata share of the entry fill's fee plus that of the exit
fill's fee, so ``net_pnl`` is net of fees on both legs.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import polars as pl

from features.data.schema import DataError

TIMESTAMP_COL = "timestamp"
BAR_COL = "bar_index"
INSTRUMENT_COL = "instrument"
SIDE_COL = "side"
QTY_COL = "qty"
PRICE_COL = "price"
FEE_COL = "fee"
SLIPPAGE_COL = "slippage"
STATUS_COL = "status"
LEDGER_COLUMNS: tuple[str, ...] = (
    TIMESTAMP_COL,
    BAR_COL,
    INSTRUMENT_COL,
    SIDE_COL,
    QTY_COL,
    PRICE_COL,
    FEE_COL,
    SLIPPAGE_COL,
    STATUS_COL,
)
FILL_STATUSES = frozenset({"filled", "partially_filled", "partial"})
SIDE_SIGN: dict[str, int] = {"buy": 1, "sell": -1}
ROUND_TRIP_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "instrument": pl.String,
    "direction": pl.Int8,
    "qty": pl.Float64,
    "entry_time": pl.Datetime("us", "UTC"),
    "exit_time": pl.Datetime("us", "UTC"),
    "entry_bar": pl.Int64,
    "exit_bar": pl.Int64,
    "entry_price": pl.Float64,
    "exit_price": pl.Float64,
    "fees": pl.Float64,
    "gross_pnl": pl.Float64,
    "net_pnl": pl.Float64,
    "net_return": pl.Float64,
}


def check_ledger(ledger: pl.DataFrame, required: tuple[str, ...] = LEDGER_COLUMNS) -> None:
    """Raise :class:`DataError` naming missing columns, unknown sides or non-positive quantities of fills."""
    missing = [c for c in required if c not in ledger.columns]
    if missing:
        raise DataError(f"ledger lacks column(s) {missing}; it has {ledger.columns}")
    fills = filled(ledger)
    bad_side = fills.filter(~pl.col(SIDE_COL).str.to_lowercase().is_in(list(SIDE_SIGN)))
    if bad_side.height:
        raise DataError(f"ledger row(s) with side not buy/sell: {bad_side[SIDE_COL].unique().to_list()}")
    bad_qty = fills.with_row_index("row").filter(~(pl.col(QTY_COL) > 0) | ~(pl.col(PRICE_COL) > 0))
    if bad_qty.height:
        raise DataError(
            f"ledger fill(s) with non-positive qty or price at fill row(s) {bad_qty['row'].to_list()[:5]}"
        )


def filled(ledger: pl.DataFrame) -> pl.DataFrame:
    """The rows that traded (status in :data:`FILL_STATUSES`)."""
    return ledger.filter(pl.col(STATUS_COL).str.to_lowercase().is_in(list(FILL_STATUSES)))


def unfilled_order_pct(ledger: pl.DataFrame) -> float:
    """Percent (0..100) of ledger rows (orders) that did not trade; NaN for an empty ledger."""
    if ledger.height == 0:
        return float("nan")
    return 100.0 * (ledger.height - filled(ledger).height) / ledger.height


def traded_notional(ledger: pl.DataFrame) -> float:
    """Sum of |qty| * price over fills, in quote currency."""
    fills = filled(ledger)
    return float((fills[QTY_COL].abs() * fills[PRICE_COL]).sum())


def costs_paid(ledger: pl.DataFrame) -> tuple[float, float]:
    """(fees, slippage) paid over fills, in quote currency."""
    fills = filled(ledger)
    slippage = float(fills[SLIPPAGE_COL].sum()) if SLIPPAGE_COL in fills.columns else 0.0
    return float(fills[FEE_COL].sum()), slippage


def positions_from_ledger(ledger: pl.DataFrame, n_bars: int) -> np.ndarray:
    """Net signed quantity held at the end of each bar 0..n_bars-1, summed over instruments.

    For exposure only the sign matters; quantities of different instruments are
    added, which is exact for a single instrument and a flat/not-flat flag otherwise
    only when positions do not cancel (use per-instrument positions from the env then).
    """
    check_ledger(ledger, (BAR_COL, SIDE_COL, QTY_COL, PRICE_COL, STATUS_COL))
    fills = filled(ledger)
    bars = fills[BAR_COL].to_numpy().astype(np.int64)
    if bars.size and (bars.min() < 0 or bars.max() >= n_bars):
        raise DataError(f"ledger bar_index outside 0..{n_bars - 1}: {bars.min()}..{bars.max()}")
    signs = np.array([SIDE_SIGN[s] for s in fills[SIDE_COL].str.to_lowercase()], dtype=float)
    per_bar = np.bincount(bars, weights=signs * fills[QTY_COL].to_numpy(), minlength=n_bars)
    return np.cumsum(per_bar)


@dataclass
class _Lot:
    direction: int
    qty: float
    price: float
    fee_per_unit: float
    time: object
    bar: int


def round_trips(ledger: pl.DataFrame, *, qty_tolerance: float = 1e-12) -> pl.DataFrame:
    """Closed round trips (FIFO per instrument), net of fees on both legs; schema :data:`ROUND_TRIP_SCHEMA`.

    ``net_return`` is ``net_pnl`` over the entry notional ``qty * entry_price``.
    Lots still open at the end of the ledger are not trades and are left out.
    """
    check_ledger(ledger)
    fills = filled(ledger).with_row_index("_row").sort([TIMESTAMP_COL, "_row"], maintain_order=True)
    rows: list[dict[str, object]] = []
    open_lots: dict[str, deque[_Lot]] = {}
    for fill in fills.iter_rows(named=True):
        lots = open_lots.setdefault(fill[INSTRUMENT_COL], deque())
        direction = SIDE_SIGN[fill[SIDE_COL].lower()]
        remaining = float(fill[QTY_COL])
        fee_per_unit = float(fill[FEE_COL]) / remaining
        while remaining > qty_tolerance and lots and lots[0].direction != direction:
            lot = lots[0]
            matched = min(remaining, lot.qty)
            rows.append(_close(fill, lot, matched, fee_per_unit))
            lot.qty -= matched
            remaining -= matched
            if lot.qty <= qty_tolerance:
                lots.popleft()
        if remaining > qty_tolerance:
            lots.append(
                _Lot(
                    direction,
                    remaining,
                    float(fill[PRICE_COL]),
                    fee_per_unit,
                    fill[TIMESTAMP_COL],
                    fill[BAR_COL],
                )
            )
    return pl.DataFrame(rows, schema=ROUND_TRIP_SCHEMA, orient="row")


def _close(fill: dict[str, object], lot: _Lot, qty: float, exit_fee_per_unit: float) -> dict[str, object]:
    exit_price = float(fill[PRICE_COL])  # type: ignore[arg-type]
    gross = lot.direction * qty * (exit_price - lot.price)
    fees = qty * (lot.fee_per_unit + exit_fee_per_unit)
    return {
        "instrument": fill[INSTRUMENT_COL],
        "direction": lot.direction,
        "qty": qty,
        "entry_time": lot.time,
        "exit_time": fill[TIMESTAMP_COL],
        "entry_bar": lot.bar,
        "exit_bar": fill[BAR_COL],
        "entry_price": lot.price,
        "exit_price": exit_price,
        "fees": fees,
        "gross_pnl": gross,
        "net_pnl": gross - fees,
        "net_return": (gross - fees) / (qty * lot.price),
    }
