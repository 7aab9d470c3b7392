"""Technical indicators, defined as TA-Lib defines them so the two agree after warm-up.

* EMA(n): seeded at bar n-1 with the simple mean of the first n closes, then
  ``ema = ema + 2/(n+1) * (close - ema)``.
* RSI(n) and ATR(n): Wilder smoothing (``alpha = 1/n``) seeded at bar n with the
  simple mean of the first n gains/losses or true ranges.
* MACD(f, s, g): both EMAs start at bar s-1 (the fast one seeded with the mean
  of the f closes ending there), the signal is an EMA(g) of the MACD line
  seeded with the mean of its first g values; all three outputs start at bar s+g-2.
* Bollinger(n, k): SMA(n) +- k population standard deviations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import polars as pl

from features.pipeline.base import (
    BuildContext,
    Feature,
    Output,
    Recursion,
    Scale,
    fmt,
    mean_over_bars,
    safe_div,
    seeded,
)

CLOSE = pl.col("close")


def seeded_ema(ctx: BuildContext, name: str, source: pl.Expr, period: int, first_bar: int) -> pl.Expr:
    """EMA of ``source`` whose first value, at ``first_bar``, is the mean of the ``period`` values ending there."""
    seed = mean_over_bars(source, first_bar - period + 1, first_bar + 1)
    return ctx.state(name, seeded(source, ctx.bar, first_bar, seed), Recursion.EWM, 2.0 / (period + 1))


def wilder(ctx: BuildContext, name: str, source: pl.Expr, period: int, first_bar: int) -> pl.Expr:
    """Wilder average (alpha 1/period) whose first value, at ``first_bar``, is the mean of the last ``period``."""
    seed = mean_over_bars(source, first_bar - period + 1, first_bar + 1)
    return ctx.state(name, seeded(source, ctx.bar, first_bar, seed), Recursion.EWM, 1.0 / period)


def _check_period(kind: str, **periods: int) -> None:
    for name, value in periods.items():
        if value < 1:
            raise ValueError(f"{kind}: {name} must be >= 1, got {value}")


@dataclass(frozen=True)
class EMA(Feature):
    period: int = 20
    group: ClassVar[str] = "indicators"
    kind: ClassVar[str] = "ema"

    def __post_init__(self) -> None:
        _check_period("ema", period=self.period)

    @property
    def warmup(self) -> int:
        return self.period - 1

    def outputs(self) -> tuple[Output, ...]:
        return (Output(f"ema_{self.period}", Scale.LEVEL),)

    def expressions(self, ctx: BuildContext) -> dict[str, pl.Expr]:
        return {self.names[0]: seeded_ema(ctx, f"ema_{self.period}", CLOSE, self.period, self.period - 1)}


@dataclass(frozen=True)
class SMA(Feature):
    period: int = 20
    group: ClassVar[str] = "indicators"
    kind: ClassVar[str] = "sma"

    def __post_init__(self) -> None:
        _check_period("sma", period=self.period)

    @property
    def warmup(self) -> int:
        return self.period - 1

    def outputs(self) -> tuple[Output, ...]:
        return (Output(f"sma_{self.period}", Scale.LEVEL),)

    def expressions(self, ctx: BuildContext) -> dict[str, pl.Expr]:
        return {self.names[0]: ctx.share(f"close_mean_{self.period}", CLOSE.rolling_mean(self.period))}


@dataclass(frozen=True)
class RSI(Feature):
    """Relative strength index in [0, 100]; 50 when the average gain and loss are both zero."""

    period: int = 14
    group: ClassVar[str] = "indicators"
    kind: ClassVar[str] = "rsi"

    def __post_init__(self) -> None:
        _check_period("rsi", period=self.period)

    @property
    def warmup(self) -> int:
        return self.period

    def outputs(self) -> tuple[Output, ...]:
        return (Output(f"rsi_{self.period}", Scale.BOUNDED, (0.0, 100.0)),)

    def expressions(self, ctx: BuildContext) -> dict[str, pl.Expr]:
        change = ctx.share("close_change", CLOSE.diff())
        n = self.period
        gain = wilder(ctx, f"rsi_{n}_gain", change.clip(lower_bound=0.0), n, n)
        loss = wilder(ctx, f"rsi_{n}_loss", (-change).clip(lower_bound=0.0), n, n)
        return {self.names[0]: safe_div(100.0 * gain, gain + loss, 50.0)}


@dataclass(frozen=True)
class MACD(Feature):
    fast: int = 12
    slow: int = 26
    signal: int = 9
    group: ClassVar[str] = "indicators"
    kind: ClassVar[str] = "macd"

    def __post_init__(self) -> None:
        _check_period("macd", fast=self.fast, slow=self.slow, signal=self.signal)
        if self.fast >= self.slow:
            raise ValueError(f"macd: fast period {self.fast} must be shorter than slow period {self.slow}")

    @property
    def suffix(self) -> str:
        return f"{self.fast}_{self.slow}_{self.signal}"

    @property
    def warmup(self) -> int:
        return self.slow + self.signal - 2

    def outputs(self) -> tuple[Output, ...]:
        return tuple(Output(f"{part}_{self.suffix}", Scale.SPREAD) for part in ("macd", "macd_signal", "macd_hist"))

    def expressions(self, ctx: BuildContext) -> dict[str, pl.Expr]:
        start = self.slow - 1
        fast = seeded_ema(ctx, f"macd_{self.suffix}_fast", CLOSE, self.fast, start)
        slow = seeded_ema(ctx, f"macd_{self.suffix}_slow", CLOSE, self.slow, start)
        line = ctx.share(f"macd_{self.suffix}_line", fast - slow)
        signal = seeded_ema(ctx, f"macd_{self.suffix}_signal", line, self.signal, start + self.signal - 1)
        line_name, signal_name, hist_name = self.names
        return {line_name: line, signal_name: signal, hist_name: line - signal}


@dataclass(frozen=True)
class Bollinger(Feature):
    """Bands, %B ((close - lower) / (upper - lower), 0.5 on a flat window) and width ((upper - lower) / middle)."""

    period: int = 20
    stdev: float = 2.0
    group: ClassVar[str] = "indicators"
    kind: ClassVar[str] = "bollinger"

    def __post_init__(self) -> None:
        _check_period("bollinger", period=self.period)
        if self.stdev <= 0:
            raise ValueError(f"bollinger: stdev must be positive, got {self.stdev}")

    @property
    def suffix(self) -> str:
        return f"{self.period}_{fmt(self.stdev)}"

    @property
    def warmup(self) -> int:
        return self.period - 1

    def outputs(self) -> tuple[Output, ...]:
        s = self.suffix
        return (Output(f"bb_upper_{s}", Scale.LEVEL), Output(f"bb_middle_{s}", Scale.LEVEL),
                Output(f"bb_lower_{s}", Scale.LEVEL), Output(f"bb_pctb_{s}", Scale.BOUNDED, (0.0, 1.0)),
                Output(f"bb_width_{s}", Scale.FREE))

    def expressions(self, ctx: BuildContext) -> dict[str, pl.Expr]:
        p = self.period
        middle = ctx.share(f"close_mean_{p}", CLOSE.rolling_mean(p))
        # population variance as mean of squares minus squared mean, the formula TA-Lib's BBANDS uses
        square = ctx.share(f"close_sq_mean_{p}", (CLOSE * CLOSE).rolling_mean(p))
        std = ctx.share(f"std_{p}", (square - middle * middle).clip(lower_bound=0.0).sqrt())
        upper = ctx.share(f"bb_upper_{self.suffix}", middle + self.stdev * std)
        lower = ctx.share(f"bb_lower_{self.suffix}", middle - self.stdev * std)
        names = self.names
        return {names[0]: upper, names[1]: middle, names[2]: lower,
                names[3]: safe_div(CLOSE - lower, upper - lower, 0.5),
                names[4]: (upper - lower) / middle}


@dataclass(frozen=True)
class ATR(Feature):
    """Average true range (Wilder); the true range needs the previous close, so the first one is at bar 1."""

    period: int = 14
    group: ClassVar[str] = "indicators"
    kind: ClassVar[str] = "atr"

    def __post_init__(self) -> None:
        _check_period("atr", period=self.period)

    @property
    def warmup(self) -> int:
        return self.period

    def outputs(self) -> tuple[Output, ...]:
        return (Output(f"atr_{self.period}", Scale.SPREAD),)

    def expressions(self, ctx: BuildContext) -> dict[str, pl.Expr]:
        tr = ctx.share("true_range", true_range())
        return {self.names[0]: wilder(ctx, f"atr_{self.period}", tr, self.period, self.period)}


def true_range() -> pl.Expr:
    """max(high - low, |high - prev close|, |low - prev close|), written as the span from the lower of low and the
    previous close to the higher of high and it: the same single subtraction, without a three-way maximum."""
    previous = CLOSE.shift(1)
    high, low = pl.col("high"), pl.col("low")
    top = pl.when(high > previous).then(high).otherwise(previous)
    bottom = pl.when(low < previous).then(low).otherwise(previous)
    return top - bottom
