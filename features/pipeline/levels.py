"""Support and resistance from confirmed fractal pivots, and causal chart-pattern indicators.

A pivot high of half-width k is a bar whose high is the highest of the 2k+1
bars centred on it; it is only *known* k bars later, so at bar t we use the
most recent pivot confirmed by bar t (the pivot at t-k at the latest), never a
pivot that later bars would reveal.  Until the first pivot is confirmed the
level falls back to the highest high (lowest low) of the last 2k+1 bars.
"""

# ruff: noqa: SIM300 -- the capitalised names are column expressions, not constants: no Yoda conditions here
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import polars as pl

from features.pipeline.base import BuildContext, Feature, Output, Recursion, Scale, safe_div

H, L, C = pl.col("high"), pl.col("low"), pl.col("close")


def _sign(expr: pl.Expr) -> pl.Expr:
    """-1, 0, +1; 0 while unknown (null)."""
    return expr.sign().fill_null(0.0)


@dataclass(frozen=True)
class SupportResistance(Feature):
    """Distances to the last confirmed pivot levels, position between them, and swing structure.

    ``sr_res_dist_k`` = log(resistance / close), ``sr_sup_dist_k`` = log(close / support): positive while
    price is inside, negative after a break.  ``sr_pos_k`` = (close - support) / (resistance - support),
    0.5 when they coincide.  ``swing_high_k`` / ``swing_low_k`` = sign of the last pivot high (low) minus
    the one before: +1 higher highs (lows), -1 lower, 0 equal or fewer than two pivots so far.
    """

    width: int = 3
    group: ClassVar[str] = "patterns"
    kind: ClassVar[str] = "support_resistance"

    def __post_init__(self) -> None:
        if self.width < 1:
            raise ValueError(f"support_resistance: width must be >= 1, got {self.width}")

    @property
    def warmup(self) -> int:
        return 2 * self.width

    def outputs(self) -> tuple[Output, ...]:
        k = self.width
        return (Output(f"sr_res_dist_{k}", Scale.FREE), Output(f"sr_sup_dist_{k}", Scale.FREE),
                Output(f"sr_pos_{k}", Scale.BOUNDED, (0.0, 1.0)), Output(f"swing_high_{k}", Scale.FIXED),
                Output(f"swing_low_{k}", Scale.FIXED))

    def _levels(self, ctx: BuildContext, price: pl.Expr, side: str) -> tuple[pl.Expr, pl.Expr]:
        k, span = self.width, 2 * self.width + 1
        extreme = ctx.share(f"high_max_{span}" if side == "res" else f"low_min_{span}",
                            price.rolling_max(span) if side == "res" else price.rolling_min(span))
        confirmed = ctx.share(f"sr_{k}_{side}_confirmed", price.shift(k) == extreme)
        last = ctx.state(f"sr_{k}_{side}", pl.when(confirmed).then(price.shift(k)), Recursion.FFILL)
        previous = ctx.state(f"sr_{k}_{side}_prev", pl.when(confirmed).then(last.shift(1)), Recursion.FFILL)
        level = ctx.share(f"sr_{k}_{side}_level", last.fill_null(extreme))
        return level, _sign(last - previous)

    def expressions(self, ctx: BuildContext) -> dict[str, pl.Expr]:
        resistance, swing_high = self._levels(ctx, H, "res")
        support, swing_low = self._levels(ctx, L, "sup")
        names = self.names
        return {names[0]: (resistance / C).log(), names[1]: (C / support).log(),
                names[2]: safe_div(C - support, resistance - support, 0.5),
                names[3]: swing_high, names[4]: swing_low}


@dataclass(frozen=True)
class Breakout(Feature):
    """Range breakouts over the last ``window`` bars.

    ``breakout_n`` = +1 when the close is above the highest high of the previous n bars, -1 below their
    lowest low, else 0.  ``range_pos_n`` = (close - lowest low) / (highest high - lowest low) over the last
    n bars including this one, 0.5 on a flat range.
    """

    window: int = 24
    group: ClassVar[str] = "patterns"
    kind: ClassVar[str] = "breakout"

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError(f"breakout: window must be >= 1, got {self.window}")

    @property
    def warmup(self) -> int:
        return self.window

    def outputs(self) -> tuple[Output, ...]:
        return (Output(f"breakout_{self.window}", Scale.FIXED),
                Output(f"range_pos_{self.window}", Scale.BOUNDED, (0.0, 1.0)))

    def expressions(self, ctx: BuildContext) -> dict[str, pl.Expr]:
        n = self.window
        high = ctx.share(f"high_max_{n}", H.rolling_max(n))
        low = ctx.share(f"low_min_{n}", L.rolling_min(n))
        prior_high, prior_low = high.shift(1), low.shift(1)  # the n bars before this one
        signal = pl.when(C > prior_high).then(pl.lit(1.0)).when(C < prior_low).then(pl.lit(-1.0)).otherwise(0.0)
        return {self.names[0]: signal, self.names[1]: safe_div(C - low, high - low, 0.5)}


@dataclass(frozen=True)
class HigherHighs(Feature):
    """(number of higher highs - number of lower lows) / n over the last n bars, in [-1, 1]."""

    window: int = 24
    group: ClassVar[str] = "patterns"
    kind: ClassVar[str] = "hhll"

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError(f"hhll: window must be >= 1, got {self.window}")

    @property
    def warmup(self) -> int:
        return self.window

    def outputs(self) -> tuple[Output, ...]:
        return (Output(f"hhll_{self.window}", Scale.BOUNDED),)

    def expressions(self, ctx: BuildContext) -> dict[str, pl.Expr]:
        steps = (H > H.shift(1)).cast(pl.Float64) - (L < L.shift(1)).cast(pl.Float64)
        return {self.names[0]: steps.rolling_mean(self.window)}
