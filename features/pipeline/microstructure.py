"""Market microstructure from top-of-book and depth columns, when the data has them.

Recognised columns (any extra columns of a bar frame are carried along):

* ``bid``, ``ask``: best prices at the bar close -> ``spread_rel`` = (ask - bid) / mid and
  ``mid_offset`` = close / mid - 1.
* ``bid_size``, ``ask_size``: sizes at the best prices -> ``book_imbalance`` =
  (bid_size - ask_size) / (bid_size + ask_size), in [-1, 1].
* ``bid_depth``, ``ask_depth`` (summed depth) or levels ``bid_size_1 .. bid_size_N`` with matching
  ``ask_size_i`` -> ``depth_imbalance``, the same ratio over all levels.

On plain OHLCV none of these features exist; the pipeline simply omits them.
A missing snapshot (null) repeats the last known one; an empty book gives 0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

import polars as pl

from features.pipeline.base import BuildContext, Feature, Output, Recursion, Scale, safe_div

_LEVEL = re.compile(r"^bid_size_(\d+)$")


def _held(ctx: BuildContext, column: str) -> pl.Expr:
    """The column, with a missing snapshot replaced by the last known one."""
    return ctx.state(f"book_{column}", pl.col(column), Recursion.FFILL)


def depth_columns(columns: frozenset[str]) -> tuple[list[str], list[str]]:
    if {"bid_depth", "ask_depth"} <= columns:
        return ["bid_depth"], ["ask_depth"]
    levels = sorted(int(m.group(1)) for c in columns if (m := _LEVEL.match(c)) and f"ask_size_{m.group(1)}" in columns)
    return [f"bid_size_{i}" for i in levels], [f"ask_size_{i}" for i in levels]


def imbalance(bids: pl.Expr, asks: pl.Expr) -> pl.Expr:
    return safe_div(bids - asks, bids + asks, 0.0)


@dataclass(frozen=True)
class Spread(Feature):
    group: ClassVar[str] = "microstructure"
    kind: ClassVar[str] = "spread"

    @property
    def warmup(self) -> int:
        return 0

    def applies(self, ctx: BuildContext) -> bool:
        return {"bid", "ask"} <= ctx.columns

    def outputs(self) -> tuple[Output, ...]:
        return (Output("spread_rel", Scale.FREE), Output("mid_offset", Scale.FREE))

    def expressions(self, ctx: BuildContext) -> dict[str, pl.Expr]:
        bid, ask = _held(ctx, "bid"), _held(ctx, "ask")
        mid = (bid + ask) / 2.0
        return {"spread_rel": safe_div(ask - bid, mid, 0.0), "mid_offset": safe_div(pl.col("close"), mid, 1.0) - 1.0}


@dataclass(frozen=True)
class BookImbalance(Feature):
    group: ClassVar[str] = "microstructure"
    kind: ClassVar[str] = "book_imbalance"

    @property
    def warmup(self) -> int:
        return 0

    def applies(self, ctx: BuildContext) -> bool:
        return {"bid_size", "ask_size"} <= ctx.columns

    def outputs(self) -> tuple[Output, ...]:
        return (Output("book_imbalance", Scale.FIXED),)

    def expressions(self, ctx: BuildContext) -> dict[str, pl.Expr]:
        return {"book_imbalance": imbalance(_held(ctx, "bid_size"), _held(ctx, "ask_size"))}


@dataclass(frozen=True)
class DepthImbalance(Feature):
    group: ClassVar[str] = "microstructure"
    kind: ClassVar[str] = "depth_imbalance"

    @property
    def warmup(self) -> int:
        return 0

    def applies(self, ctx: BuildContext) -> bool:
        return bool(depth_columns(ctx.columns)[0])

    def outputs(self) -> tuple[Output, ...]:
        return (Output("depth_imbalance", Scale.FIXED),)

    def expressions(self, ctx: BuildContext) -> dict[str, pl.Expr]:
        bid_cols, ask_cols = depth_columns(ctx.columns)
        bids = pl.sum_horizontal(_held(ctx, c) for c in bid_cols)
        asks = pl.sum_horizontal(_held(ctx, c) for c in ask_cols)
        return {"depth_imbalance": imbalance(bids, asks)}
