"""Candlestick patterns as causal polars expressions.

Sizes are judged against the candles *before* the one being judged, with
TA-Lib's default candle settings: a body is "long" or "short" against the mean
body of the previous 10 candles, a "doji" body is at most 10% of the previous 10
candles' mean high-low range, a "very short" shadow is under 10% of that range,
"near" is within 20% and "far" at least 60% of the previous 5 candles' mean range,
a "long" shadow is longer than the candle's own body.  Values are +1 (bullish),
-1 (bearish), +-0.8 for engulfing/harami whose bodies match at one end, else 0.
Every pattern follows TA-Lib's rules (``CDL*`` functions, default settings), and
the tests check they fire on exactly the same bars.
"""

# ruff: noqa: SIM300 -- the capitalised names are column expressions, not constants: no Yoda conditions here
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import polars as pl

from features.pipeline.base import HIDDEN, BuildContext, Feature, Output, Scale

O, H, L, C = pl.col("open"), pl.col("high"), pl.col("low"), pl.col("close")  # noqa: E741
AVERAGE_PERIOD = 10
NEAR_PERIOD = 5
_white = C >= O  # TA-Lib colour: a flat candle counts as white
# candle parts, computed once per series as hidden columns (see Sizes.shared) and read by every pattern
PARTS: dict[str, pl.Expr] = {
    "cdl_body": (C - O).abs(), "cdl_range": H - L, "cdl_white": _white, "cdl_black": C < O,
    "cdl_top": pl.when(_white).then(C).otherwise(O), "cdl_bottom": pl.when(_white).then(O).otherwise(C),
}
BODY, RANGE, WHITE, BLACK, TOP, BOTTOM = (pl.col(HIDDEN + name) for name in PARTS)
PARTS["cdl_upper_shadow"] = H - TOP
PARTS["cdl_lower_shadow"] = BOTTOM - L
UPPER_SHADOW, LOWER_SHADOW = pl.col(HIDDEN + "cdl_upper_shadow"), pl.col(HIDDEN + "cdl_lower_shadow")


def lag(expr: pl.Expr, bars: int) -> pl.Expr:
    return expr.shift(bars) if bars else expr


@dataclass(frozen=True)
class Sizes:
    """Mean sizes of the candles before candle t (computed once per series, shifted for earlier candles)."""

    body: pl.Expr  # mean real body of the previous 10 candles
    range: pl.Expr  # mean high-low range of the previous 10 candles
    near_range: pl.Expr  # mean high-low range of the previous 5 candles

    @classmethod
    def shared(cls, ctx: BuildContext) -> Sizes:
        for name, expr in PARTS.items():
            ctx.share(name, expr)
        # sum / period, as TA-Lib averages (a rolling sum is also the cheaper polars window)
        return cls(ctx.share("cdl_body_avg", BODY.shift(1).rolling_sum(AVERAGE_PERIOD) / AVERAGE_PERIOD),
                   ctx.share("cdl_range_avg", RANGE.shift(1).rolling_sum(AVERAGE_PERIOD) / AVERAGE_PERIOD),
                   ctx.share("cdl_near_avg", RANGE.shift(1).rolling_sum(NEAR_PERIOD) / NEAR_PERIOD))

    def body_long(self, candle: int) -> pl.Expr:
        return lag(BODY, candle) > lag(self.body, candle)

    def body_short(self, candle: int, strict: bool) -> pl.Expr:
        body, limit = lag(BODY, candle), lag(self.body, candle)
        return body < limit if strict else body <= limit

    def shadow_very_short(self, shadow: pl.Expr, candle: int) -> pl.Expr:
        return lag(shadow, candle) < 0.1 * lag(self.range, candle)


def flag(condition: pl.Expr, value: float) -> pl.Expr:
    return pl.when(condition).then(pl.lit(value)).otherwise(pl.lit(0.0))


def doji(sizes: Sizes, _: float) -> pl.Expr:
    return flag(BODY <= 0.1 * sizes.range, 1.0)


def hammer(sizes: Sizes, _: float) -> pl.Expr:
    near_prior_low = BOTTOM <= L.shift(1) + 0.2 * sizes.near_range.shift(1)
    return flag(sizes.body_short(0, strict=True) & (LOWER_SHADOW > BODY) & sizes.shadow_very_short(UPPER_SHADOW, 0)
                & near_prior_low, 1.0)


def shooting_star(sizes: Sizes, _: float) -> pl.Expr:
    gap_up = BOTTOM > TOP.shift(1)
    return flag(gap_up & sizes.body_short(0, strict=True) & (UPPER_SHADOW > BODY)
                & sizes.shadow_very_short(LOWER_SHADOW, 0), -1.0)


def engulfing(sizes: Sizes, _: float) -> pl.Expr:
    po, pc = O.shift(1), C.shift(1)
    bullish = WHITE & BLACK.shift(1) & (((C >= po) & (O < pc)) | ((C > po) & (O <= pc)))
    bearish = BLACK & WHITE.shift(1) & (((O >= pc) & (C < po)) | ((O > pc) & (C <= po)))
    strength = pl.when((O != pc) & (C != po)).then(pl.lit(1.0)).otherwise(pl.lit(0.8))
    sign = pl.when(WHITE).then(pl.lit(1.0)).otherwise(pl.lit(-1.0))
    return pl.when(bullish | bearish).then(sign * strength).otherwise(pl.lit(0.0))


def harami(sizes: Sizes, _: float) -> pl.Expr:
    top, bottom = TOP.shift(1), BOTTOM.shift(1)
    setup = sizes.body_long(1) & sizes.body_short(0, strict=False)
    inside = (TOP < top) & (BOTTOM > bottom)
    touching = (TOP <= top) & (BOTTOM >= bottom)
    sign = pl.when(WHITE.shift(1)).then(pl.lit(-1.0)).otherwise(pl.lit(1.0))
    strength = pl.when(inside).then(pl.lit(1.0)).when(touching).then(pl.lit(0.8)).otherwise(pl.lit(0.0))
    return pl.when(setup).then(sign * strength).otherwise(pl.lit(0.0))


def _star_bodies(sizes: Sizes) -> pl.Expr:
    return sizes.body_long(2) & sizes.body_short(1, strict=False) & ~sizes.body_short(0, strict=False)


def morning_star(sizes: Sizes, penetration: float) -> pl.Expr:
    gap_down = TOP.shift(1) < BOTTOM.shift(2)
    closes_in = C > C.shift(2) + BODY.shift(2) * penetration
    return flag(BLACK.shift(2) & WHITE & gap_down & closes_in & _star_bodies(sizes), 1.0)


def evening_star(sizes: Sizes, penetration: float) -> pl.Expr:
    gap_up = BOTTOM.shift(1) > TOP.shift(2)
    closes_in = C < C.shift(2) - BODY.shift(2) * penetration
    return flag(WHITE.shift(2) & BLACK & gap_up & closes_in & _star_bodies(sizes), -1.0)


def three_black_crows(sizes: Sizes, _: float) -> pl.Expr:
    falling = (C.shift(2) > C.shift(1)) & (C.shift(1) > C)
    opens_within = (O.shift(1) < O.shift(2)) & (O.shift(1) > C.shift(2)) & (O < O.shift(1)) & (O > C.shift(1))
    short_shadows = sizes.shadow_very_short(LOWER_SHADOW, 2) & sizes.shadow_very_short(LOWER_SHADOW, 1) \
        & sizes.shadow_very_short(LOWER_SHADOW, 0)
    setup = WHITE.shift(3) & BLACK.shift(2) & BLACK.shift(1) & BLACK & (H.shift(3) > C.shift(2))
    return flag(setup & opens_within & falling & short_shadows, -1.0)


def three_white_soldiers(sizes: Sizes, _: float) -> pl.Expr:
    rising = (C > C.shift(1)) & (C.shift(1) > C.shift(2))
    short_shadows = sizes.shadow_very_short(UPPER_SHADOW, 2) & sizes.shadow_very_short(UPPER_SHADOW, 1) \
        & sizes.shadow_very_short(UPPER_SHADOW, 0)
    opens_near = (O.shift(1) > O.shift(2)) & (O.shift(1) <= C.shift(2) + 0.2 * sizes.near_range.shift(2)) \
        & (O > O.shift(1)) & (O <= C.shift(1) + 0.2 * sizes.near_range.shift(1))
    not_shrinking = (BODY.shift(1) > BODY.shift(2) - 0.6 * sizes.near_range.shift(2)) \
        & (BODY > BODY.shift(1) - 0.6 * sizes.near_range.shift(1))
    setup = WHITE.shift(2) & WHITE.shift(1) & WHITE & ~sizes.body_short(0, strict=False)
    return flag(setup & short_shadows & rising & opens_near & not_shrinking, 1.0)


# name -> (expression builder taking the star penetration, warm-up bars = TA-Lib lookback)
PATTERNS: dict[str, tuple[Callable[[Sizes, float], pl.Expr], int]] = {
    "doji": (doji, 10),
    "hammer": (hammer, 11),
    "shooting_star": (shooting_star, 11),
    "engulfing": (engulfing, 2),
    "harami": (harami, 11),
    "morning_star": (morning_star, 12),
    "evening_star": (evening_star, 12),
    "three_white_soldiers": (three_white_soldiers, 12),
    "three_black_crows": (three_black_crows, 13),
}


@dataclass(frozen=True)
class CandlePattern(Feature):
    """One candlestick pattern; ``penetration`` is how far into the first body a star's third candle closes."""

    pattern: str = "doji"
    penetration: float = 0.3
    group: ClassVar[str] = "patterns"
    kind: ClassVar[str] = "candle"

    def __post_init__(self) -> None:
        if self.pattern not in PATTERNS:
            raise ValueError(f"unknown candle pattern {self.pattern!r}; known: {', '.join(PATTERNS)}")
        if self.penetration < 0:
            raise ValueError(f"candle: penetration must be >= 0, got {self.penetration}")

    @property
    def warmup(self) -> int:
        return PATTERNS[self.pattern][1]

    def outputs(self) -> tuple[Output, ...]:
        return (Output(f"cdl_{self.pattern}", Scale.FIXED),)

    def expressions(self, ctx: BuildContext) -> dict[str, pl.Expr]:
        return {self.names[0]: PATTERNS[self.pattern][0](Sizes.shared(ctx), self.penetration)}
