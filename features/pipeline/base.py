"""The feature seam: one small abstract :class:`Feature`, plus the build context it reads.

A feature is a named, parameterised set of output columns computed from one
series' bar frame with polars expressions.  It declares its *warm-up*: the
number of leading bars whose windows are not yet full.  The pipeline masks
those rows to null by one rule (``bar index < warmup``), so no feature ever
fills its warm-up with anything, let alone future values.

Recursive quantities (EMAs, Wilder averages, cumulative sums, the last
confirmed pivot) are built with :meth:`BuildContext.state`, which makes them
resumable: the incremental engine feeds the value a state had at the last
processed bar back in as a seed, so one new bar costs a few rows of work and
gives bit-for-bit the batch result.  Every output carries a :class:`Scale`
telling normalisation how to make it unit-free.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any, ClassVar

import polars as pl

from features.data.schema import BarKey

BAR = "__bar"  # absolute bar index within the series (0 = first bar ever seen)
FROZEN = "__frozen"  # incremental mode: rows whose values are already known
SEED = "__seed"  # incremental mode: the last known row, where recursions restart
KNOWN = "__known__"  # incremental mode: prefix of the columns holding known output values
KNOWN_STATE = "__known_state__"  # incremental mode: prefix of the columns holding known state values
STATE = "__state__"  # prefix of materialised recursion states
HIDDEN = "__x__"  # prefix of shared intermediate columns
RAW = "__raw__"  # prefix of unnormalised copies of the outputs (incremental mode keeps them as known values)


class Scale(StrEnum):
    """What unit an output is in, so normalisation knows how to make it unit-free."""

    LEVEL = "level"  # a price level (EMA, band, support): expressed as x / close - 1
    SPREAD = "spread"  # a price distance (ATR, MACD): expressed as x / close
    FREE = "free"  # unit-free but unbounded (returns, OBV, volatility): scaled by statistics of the past
    BOUNDED = "bounded"  # a known range (RSI 0..100, correlations): mapped affinely onto [-1, 1], no statistics
    FIXED = "fixed"  # flags and cyclic encodings, already in [-1, 1]: left as they are


class Recursion(StrEnum):
    """The recursive operations a state can use; each restarts exactly from a seed value."""

    EWM = "ewm"  # y_t = (1 - alpha) y_{t-1} + alpha x_t, started at the first non-null x
    CUMSUM = "cumsum"  # y_t = y_{t-1} + x_t
    FFILL = "ffill"  # y_t = x_t if x_t is not null else y_{t-1}


@dataclass(frozen=True)
class Output:
    name: str
    scale: Scale
    bounds: tuple[float, float] = (-1.0, 1.0)  # the nominal range of a BOUNDED output

    @property
    def scaled(self) -> bool:
        """Whether normalisation rescales it with statistics (rolling or fitted)."""
        return self.scale in (Scale.LEVEL, Scale.SPREAD, Scale.FREE)


@dataclass
class BuildContext:
    """What a feature may look at while building its expressions for one series.

    key: the series being computed (None while compiling the expressions all series share).
    columns: the columns its bar frame has (so a feature can skip itself when, e.g., there is
    no order-book data).  incremental: build resumable states (see :meth:`state`).  peers:
    every series' bar frame with its ``__bar`` column, for features that join other series.

    Intermediate results shared by several outputs (a band's mean, a state) are
    registered with :meth:`share` and computed once, as hidden columns, in stages
    ordered by their dependencies.
    """

    key: BarKey | None
    columns: frozenset[str]
    incremental: bool = False
    peers: Mapping[BarKey, pl.LazyFrame] = field(default_factory=dict)
    shared: dict[str, pl.Expr] = field(default_factory=dict)
    stage_of: dict[str, int] = field(default_factory=dict)
    states: list[str] = field(default_factory=list)

    @property
    def bar(self) -> pl.Expr:
        return pl.col(BAR)

    @property
    def series(self) -> BarKey:
        """The series key, for the frame-level features that need it."""
        if self.key is None:
            raise ValueError("a frame-level feature was built without its series key")
        return self.key

    def share(self, name: str, expr: pl.Expr) -> pl.Expr:
        """Compute ``expr`` once per series as hidden column ``name``; returns a reference to it.

        Names identify the computation: two calls with the same name must mean the same expression."""
        column = name if name.startswith(STATE) else HIDDEN + name
        if column not in self.shared:
            deps = [self.stage_of[r] for r in expr.meta.root_names() if r in self.stage_of]
            self.stage_of[column] = 1 + max(deps) if deps else 0
            self.shared[column] = expr.alias(column)
        return pl.col(column)

    def stages(self) -> list[list[pl.Expr]]:
        """The shared columns grouped so that each stage only reads columns of earlier stages."""
        count = 1 + max(self.stage_of.values(), default=-1)
        return [[e for c, e in self.shared.items() if self.stage_of[c] == level] for level in range(count)]

    def state(self, name: str, source: pl.Expr, kind: Recursion, alpha: float | None = None) -> pl.Expr:
        """A recursion over ``source``; in incremental mode it restarts from the known value at the seed row."""
        if STATE + name in self.shared:
            return pl.col(STATE + name)
        if not self.incremental:
            expr = _recur(source, kind, alpha)
        else:
            known = pl.col(KNOWN_STATE + name)
            seeded = pl.when(pl.col(SEED)).then(known).when(pl.col(FROZEN)).then(None).otherwise(source)
            expr = pl.when(pl.col(FROZEN)).then(known).otherwise(_recur(seeded, kind, alpha))
        self.states.append(name)
        return self.share(STATE + name, expr)

    def settle(self, frame: pl.LazyFrame, names: list[str]) -> pl.LazyFrame:
        """Incremental mode: replace computed values by the known ones on frozen rows (a no-op in batch)."""
        if not self.incremental or not names:
            return frame
        return frame.with_columns(
            pl.when(pl.col(FROZEN)).then(pl.col(KNOWN + n)).otherwise(pl.col(n)).alias(n) for n in names
        )


def _recur(source: pl.Expr, kind: Recursion, alpha: float | None) -> pl.Expr:
    if kind is Recursion.EWM:
        if alpha is None:
            raise ValueError("an EWM state needs alpha")
        return source.ewm_mean(alpha=alpha, adjust=False, ignore_nulls=True)
    if kind is Recursion.CUMSUM:
        return source.cum_sum()
    return source.forward_fill()


def mean_over_bars(source: pl.Expr, start: int, stop: int) -> pl.Expr:
    """Mean of ``source`` over bars [start, stop): the simple-average seed of a recursion.

    Rows are bars here: a frame either starts at bar 0, or is an incremental buffer that has slid past
    the seed bar, where the seed is never used (no row has ``bar == seed_bar``)."""
    return source.slice(start, stop - start).mean()


def seeded(source: pl.Expr, bar: pl.Expr, seed_bar: int, seed: pl.Expr) -> pl.Expr:
    """``source`` with null before ``seed_bar`` and ``seed`` at it: the input of a TA-Lib-style recursion."""
    return pl.when(bar < seed_bar).then(None).when(bar == seed_bar).then(seed).otherwise(source)


def safe_div(numerator: pl.Expr, denominator: pl.Expr, default: float) -> pl.Expr:
    """numerator / denominator, and ``default`` where the denominator is zero (never NaN or inf)."""
    return pl.when(denominator != 0).then(numerator / denominator).otherwise(pl.lit(default))


def fmt(value: float) -> str:
    """Parameter text for column names: 2.0 -> '2', 2.5 -> '2.5'."""
    return f"{value:g}"


class Feature(ABC):
    """A group of output columns computed from one series' bars.

    Subclasses are frozen dataclasses whose fields are the parameters.  ``group``
    names the config group it belongs to.  ``expressions`` returns one polars
    expression per output name, using only the current and earlier rows.
    """

    group: ClassVar[str] = ""  # the config section it belongs to
    kind: ClassVar[str] = ""  # the feature's name, e.g. "rsi"

    @property
    def name(self) -> str:
        return self.kind

    @property
    def parameters(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.init}  # type: ignore[arg-type]

    @property
    @abstractmethod
    def warmup(self) -> int:
        """Leading bars whose windows are not full: rows with bar index < warmup are null."""

    @abstractmethod
    def outputs(self) -> tuple[Output, ...]:
        """The columns this feature produces, with their scale."""

    @abstractmethod
    def expressions(self, ctx: BuildContext) -> dict[str, pl.Expr]:
        """One causal expression per output name."""

    def applies(self, ctx: BuildContext) -> bool:
        """Whether this series has what the feature needs (e.g. order-book columns)."""
        return True

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.outputs())

    def describe(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in self.parameters.items())
        return f"{self.kind}({params})"


class FrameFeature(Feature):
    """A feature that needs a frame-level step (a join with another series or an external source)."""

    def expressions(self, ctx: BuildContext) -> dict[str, pl.Expr]:
        return {}

    @abstractmethod
    def apply(self, frame: pl.LazyFrame, ctx: BuildContext) -> pl.LazyFrame:
        """Add this feature's outputs to the frame; call ``ctx.settle`` on joined columns before windowing them."""


def mask_warmup(expr: pl.Expr, warmup: int) -> pl.Expr:
    """The one warm-up rule: null before the feature's windows are full."""
    if warmup <= 0:
        return expr
    return pl.when(pl.col(BAR) >= warmup).then(expr)
