"""Volume features: on-balance volume and the volume rate of change (TA-Lib definitions)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import polars as pl

from features.pipeline.base import BuildContext, Feature, Output, Recursion, Scale, safe_div


@dataclass(frozen=True)
class OBV(Feature):
    """On-balance volume: starts at the first bar's volume, then adds volume on up closes and subtracts it on down."""

    group: ClassVar[str] = "volume"
    kind: ClassVar[str] = "obv"

    @property
    def warmup(self) -> int:
        return 0

    def outputs(self) -> tuple[Output, ...]:
        return (Output("obv", Scale.FREE),)

    def expressions(self, ctx: BuildContext) -> dict[str, pl.Expr]:
        volume = pl.col("volume")
        signed = pl.when(ctx.bar == 0).then(volume).otherwise(pl.col("close").diff().sign() * volume)
        return {"obv": ctx.state("obv", signed, Recursion.CUMSUM)}


@dataclass(frozen=True)
class VolumeROC(Feature):
    """Volume rate of change in percent, 100 * (v_t / v_{t-n} - 1); 0 when v_{t-n} is zero (as TA-Lib)."""

    period: int = 10
    group: ClassVar[str] = "volume"
    kind: ClassVar[str] = "volume_roc"

    def __post_init__(self) -> None:
        if self.period < 1:
            raise ValueError(f"volume_roc: period must be >= 1, got {self.period}")

    @property
    def warmup(self) -> int:
        return self.period

    def outputs(self) -> tuple[Output, ...]:
        return (Output(f"volume_roc_{self.period}", Scale.FREE),)

    def expressions(self, ctx: BuildContext) -> dict[str, pl.Expr]:
        volume = pl.col("volume")
        past = volume.shift(self.period)
        return {self.names[0]: safe_div(100.0 * (volume - past), past, 0.0)}
