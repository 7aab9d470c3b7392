"""Returns and volatility: log returns over several horizons, rolling volatility, rolling z-scores."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import polars as pl

from features.pipeline.base import BuildContext, Feature, Output, Scale

ZERO_SPREAD = 1e-12  # a rolling variance at or below this fraction of the mean square is a flat window


def log_return(horizon: int, close: pl.Expr | None = None) -> pl.Expr:
    close = pl.col("close") if close is None else close
    return (close / close.shift(horizon)).log()


def rolling_zscore(ctx: BuildContext, column: str, window: int) -> pl.Expr:
    """(x - rolling mean) / rolling population std over ``window`` rows; 0 on a flat window.

    The variance is the mean of squares minus the squared mean (two shared rolling means)."""
    value = pl.col(column)
    mean = ctx.share(f"{column}_mean_{window}", value.rolling_mean(window))
    square = ctx.share(f"{column}_sq_mean_{window}", (value * value).rolling_mean(window))
    var = (square - mean * mean).clip(lower_bound=0.0)
    flat = var <= ZERO_SPREAD * square
    return pl.when(flat).then(pl.lit(0.0)).otherwise((value - mean) / var.sqrt())


def _check(kind: str, value: int) -> None:
    if value < 1:
        raise ValueError(f"{kind}: window/horizon must be >= 1, got {value}")


@dataclass(frozen=True)
class LogReturn(Feature):
    """log(close_t / close_{t-h})."""

    horizon: int = 1
    group: ClassVar[str] = "returns"
    kind: ClassVar[str] = "logret"

    def __post_init__(self) -> None:
        _check("logret", self.horizon)

    @property
    def warmup(self) -> int:
        return self.horizon

    def outputs(self) -> tuple[Output, ...]:
        return (Output(f"logret_{self.horizon}", Scale.FREE),)

    def expressions(self, ctx: BuildContext) -> dict[str, pl.Expr]:
        return {self.names[0]: ctx.share(f"logret_{self.horizon}", log_return(self.horizon))}


@dataclass(frozen=True)
class Volatility(Feature):
    """Sample standard deviation of the one-bar log returns over the last ``window`` bars (not annualised)."""

    window: int = 24
    group: ClassVar[str] = "returns"
    kind: ClassVar[str] = "volatility"

    def __post_init__(self) -> None:
        _check("volatility", self.window)
        if self.window < 2:
            raise ValueError("volatility: window must be >= 2")

    @property
    def warmup(self) -> int:
        return self.window

    def outputs(self) -> tuple[Output, ...]:
        return (Output(f"volatility_{self.window}", Scale.FREE),)

    def expressions(self, ctx: BuildContext) -> dict[str, pl.Expr]:
        var = ctx.share("logret_1", log_return(1)).rolling_var(self.window, ddof=1).clip(lower_bound=0.0)
        return {self.names[0]: var.sqrt()}


@dataclass(frozen=True)
class ZScore(Feature):
    """Rolling z-score of a bar column (close or volume) over ``window`` bars; 0 on a flat window."""

    column: str = "close"
    window: int = 24
    group: ClassVar[str] = "returns"
    kind: ClassVar[str] = "zscore"

    def __post_init__(self) -> None:
        _check("zscore", self.window)
        if self.column not in ("open", "high", "low", "close", "volume"):
            raise ValueError(f"zscore: column must be an OHLCV column, got {self.column!r}")

    @property
    def warmup(self) -> int:
        return self.window - 1

    def outputs(self) -> tuple[Output, ...]:
        return (Output(f"zscore_{self.column}_{self.window}", Scale.BOUNDED),)

    def expressions(self, ctx: BuildContext) -> dict[str, pl.Expr]:
        return {self.names[0]: rolling_zscore(ctx, self.column, self.window)}
