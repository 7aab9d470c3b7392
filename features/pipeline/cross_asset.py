"""Cross-asset features: a reference coin's returns (e.g. BTC's) as features of every series.

The reference's values are joined *as of the bar close*: a series' bar closing
at time c sees the reference bar that closed at or before c (the same bar when
both share a timeframe, the last one when the reference has a gap).  The
reference is found in the dataset by base asset (``BTC``), symbol
(``BTC/USDT``) or instrument (``binance:BTC/USDT``), preferring the same
exchange, then the same timeframe.  When the dataset has no such series the
features are left out for every series alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import polars as pl

from features.data.schema import TIMESTAMP, BarKey, parse_timeframe
from features.pipeline.base import BuildContext, FrameFeature, Output, Scale, mask_warmup
from features.pipeline.returns import log_return

CLOSE_TIME = "__close_time"
REFERENCE_CLOSE = "__reference_close_time"
FLAT_VARIANCE = 1e-9  # a return variance below this fraction of the mean squared return is a flat window


def base_asset(symbol: str) -> str:
    return symbol.split("/", 1)[0]


def find_reference(reference: str, key: BarKey, candidates: list[BarKey]) -> BarKey | None:
    """The series standing for ``reference``, preferring the same exchange and then the same timeframe."""
    wanted = reference.strip()
    matches = [k for k in candidates
               if wanted.upper() in (k.symbol, base_asset(k.symbol)) or wanted in (str(k), k.instrument)]
    if not matches:
        return None
    return min(matches, key=lambda k: (k.exchange != key.exchange, k.timeframe != key.timeframe, k))


def rolling_corr_stages(a: str, b: str, window: int, out: str) -> list[list[pl.Expr]]:
    """Pearson correlation of columns ``a`` and ``b`` over the last ``window`` rows; 0 when either side is flat.

    Two stages: the five window moments as hidden columns, then the correlation from them."""
    x, y = pl.col(a), pl.col(b)
    names = {k: f"__corr_{k}_{out}" for k in ("x", "y", "xy", "xx", "yy")}
    moments = [x.rolling_mean(window).alias(names["x"]), y.rolling_mean(window).alias(names["y"]),
               (x * y).rolling_mean(window).alias(names["xy"]), (x * x).rolling_mean(window).alias(names["xx"]),
               (y * y).rolling_mean(window).alias(names["yy"])]
    mx, my, mxy, mxx, myy = (pl.col(names[k]) for k in ("x", "y", "xy", "xx", "yy"))
    cov, var_x, var_y = mxy - mx * my, mxx - mx * mx, myy - my * my
    flat = (var_x <= FLAT_VARIANCE * mxx) | (var_y <= FLAT_VARIANCE * myy)
    corr = pl.when(flat).then(pl.lit(0.0)).otherwise((cov / (var_x * var_y).sqrt()).clip(-1.0, 1.0))
    return [moments, [corr.alias(out)]]


@dataclass(frozen=True)
class CrossAsset(FrameFeature):
    """Per reference R: ``xa_R_logret_h`` (R's log return over h bars), ``xa_R_rel_h`` (own log return minus
    R's) and ``xa_R_corr_w`` (correlation of one-bar log returns with R over w bars).  Horizon 1 is always
    included because the correlation needs it."""

    reference: str = "BTC"
    horizons: tuple[int, ...] = (1, 24)
    corr_window: int = 168
    group: ClassVar[str] = "cross_asset"
    kind: ClassVar[str] = "cross_asset"
    _tag: str = field(init=False, repr=False, compare=False, default="")

    def __post_init__(self) -> None:
        if not self.horizons or min(self.horizons) < 1 or self.corr_window < 2:
            raise ValueError("cross_asset: horizons must be >= 1 and corr_window >= 2")
        # the one-bar return is always joined: the correlation is computed on it
        object.__setattr__(self, "horizons", tuple(sorted({1, *self.horizons})))
        tag = "".join(ch if ch.isalnum() else "_" for ch in base_asset(self.reference.split(":")[-1]).lower())
        object.__setattr__(self, "_tag", tag)

    @property
    def warmup(self) -> int:
        return max(*self.horizons, self.corr_window)

    def _joined(self) -> list[str]:
        return [f"xa_{self._tag}_logret_{h}" for h in self.horizons]

    def outputs(self) -> tuple[Output, ...]:
        joined = [Output(n, Scale.FREE) for n in self._joined()]
        relative = [Output(f"xa_{self._tag}_rel_{h}", Scale.FREE) for h in self.horizons]
        return (*joined, *relative, Output(f"xa_{self._tag}_corr_{self.corr_window}", Scale.BOUNDED))

    def reference_key(self, ctx: BuildContext) -> BarKey | None:
        return find_reference(self.reference, ctx.series, sorted(ctx.peers))

    def applies(self, ctx: BuildContext) -> bool:
        return self.reference_key(ctx) is not None

    def apply(self, frame: pl.LazyFrame, ctx: BuildContext) -> pl.LazyFrame:
        ref_key = self.reference_key(ctx)
        if ref_key is None:
            return frame
        reference = ctx.peers[ref_key].select(
            (pl.col(TIMESTAMP) + parse_timeframe(ref_key.timeframe)).alias(REFERENCE_CLOSE),
            *(mask_warmup(log_return(h), h).alias(name) for h, name in zip(self.horizons, self._joined(), strict=True)),
        )
        own_close = (pl.col(TIMESTAMP) + parse_timeframe(ctx.series.timeframe)).alias(CLOSE_TIME)
        frame = frame.with_columns(own_close).join_asof(
            reference, left_on=CLOSE_TIME, right_on=REFERENCE_CLOSE, strategy="backward"
        ).drop(CLOSE_TIME, REFERENCE_CLOSE, strict=False)
        frame = ctx.settle(frame, self._joined())
        own = {h: f"__xa_own_{h}" for h in self.horizons}
        frame = frame.with_columns(mask_warmup(log_return(h), h).alias(own[h]) for h in self.horizons)
        corr_name = f"xa_{self._tag}_corr_{self.corr_window}"
        moments, corr = rolling_corr_stages(own[1], self._joined()[0], self.corr_window, corr_name)
        relative = [(pl.col(own[h]) - pl.col(name)).alias(f"xa_{self._tag}_rel_{h}")
                    for h, name in zip(self.horizons, self._joined(), strict=True)]
        frame = frame.with_columns(*relative, *moments).with_columns(
            mask_warmup(e, self.corr_window).alias(corr_name) for e in corr)
        hidden = [*own.values(), *(e.meta.output_name() for e in moments)]
        return frame.drop(hidden)
