"""Incremental features: one closed bar at a time, equal to the batch computation (what live trading needs).

For every series the engine keeps a bounded buffer of the last ``capacity``
bars together with what was computed for them: the raw feature values and the
recursion states (EMAs, Wilder averages, cumulative sums, last pivots).  A new
bar is appended and the *same* polars plan as in batch mode runs over the
buffer, with every old row frozen to its known values and every recursion
restarted from its value at the previous bar.  So the new row gets exactly the
batch result (recursions bit for bit; rolling sums to the last bit or two),
while each update costs a few hundred rows of work whatever the history length.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import polars as pl

from features.data.schema import OHLCV_COLUMNS, TIMESTAMP, TIMESTAMP_DTYPE, BarKey, DataError, Dataset
from features.data.validate import validate_bars
from features.pipeline.base import BAR, FROZEN, KNOWN, KNOWN_STATE, RAW, SEED, STATE, BuildContext
from features.pipeline.cross_asset import CrossAsset
from features.pipeline.pipeline import ENGINE, WARM, FeaturePipeline, with_bar_index

# A few hundred rows: planning and optimising the query costs more than it saves.
UNOPTIMISED = pl.QueryOptFlags.none()


class IncrementalFeatures:
    """Feed closed bars with :meth:`update`; get the feature row batch mode would give for them."""

    def __init__(self, pipeline: FeaturePipeline, history: Dataset, *, capacity: int | None = None) -> None:
        self.pipeline = pipeline
        self.capacity = capacity or pipeline.lookback
        if self.capacity < pipeline.lookback:
            raise DataError(f"capacity {self.capacity} is below the pipeline's look-back of {pipeline.lookback} bars")
        self.columns = {key: history[key].columns for key in history.keys}
        plans = pipeline.plans(history, normalise=False)
        self.outputs = {p.key: p.names for p in plans}
        self.states = {p.key: p.states for p in plans}
        frames = pl.collect_all([p.frame.select(*self.columns[p.key], BAR, *p.names, *(STATE + s for s in p.states))
                                 for p in plans], engine=ENGINE)
        self._buffers = {p.key: f.tail(self.capacity) for p, f in zip(plans, frames, strict=True)}
        self.order = self._dependency_order(history)

    def _dependency_order(self, history: Dataset) -> list[BarKey]:
        """Reference series first, so a dependent bar joins the reference's bar of the same close."""
        peers = {k: with_bar_index(history[k].head(0)) for k in history.keys}
        referenced: set[BarKey] = set()
        for key in history.keys:
            ctx = BuildContext(key, frozenset(self.columns[key]), peers=peers)
            for feature in self.pipeline.features:
                if isinstance(feature, CrossAsset) and (ref := feature.reference_key(ctx)) is not None:
                    referenced.add(ref)
        return sorted(history.keys, key=lambda k: (k not in referenced, k))

    def _new_row(self, key: BarKey, bar: Mapping[str, Any] | pl.DataFrame) -> pl.DataFrame:
        buffer = self._buffers[key]
        row = bar if isinstance(bar, pl.DataFrame) else pl.DataFrame([dict(bar)])
        missing = [c for c in self.columns[key] if c not in row.columns]
        if missing or row.height != 1:
            raise DataError(f"{key}: a new bar needs one row with {', '.join(self.columns[key])}"
                            + (f"; missing {', '.join(missing)}" if missing else f"; got {row.height} rows"))
        row = row.select(self.columns[key]).with_columns(pl.col(TIMESTAMP).cast(TIMESTAMP_DTYPE),
                                                         *(pl.col(c).cast(pl.Float64) for c in OHLCV_COLUMNS))
        validate_bars(row, f"{key} new bar", key.timeframe).raise_for_errors()
        if buffer.height:
            last: datetime = buffer[TIMESTAMP][-1]
            if row[TIMESTAMP][0] <= last:
                raise DataError(f"{key}: bar at {row[TIMESTAMP][0]} is not after the last one ({last})")
        index = int(buffer[BAR][-1]) + 1 if buffer.height else 0
        return row.cast(buffer.select(self.columns[key]).schema).with_columns(pl.lit(index, pl.Int64).alias(BAR))

    def _frame(self, key: BarKey, row: pl.DataFrame) -> pl.DataFrame:
        """Buffer + new bar, with the frozen/seed flags and the known values of the old rows."""
        buffer = self._buffers[key]
        old = buffer.height
        bars = pl.concat([buffer.select(*self.columns[key], BAR), row], how="vertical")
        known = buffer.select(*(pl.col(n).alias(KNOWN + n) for n in self.outputs[key]),
                              *(pl.col(STATE + s).alias(KNOWN_STATE + s) for s in self.states[key]))
        known = pl.concat([known, known.clear(1)], how="vertical")
        index = pl.int_range(pl.len(), dtype=pl.Int64)
        return bars.hstack(known).with_columns((index < old).alias(FROZEN), (index == old - 1).alias(SEED))

    def update(self, bars: Mapping[BarKey | str, Mapping[str, Any] | pl.DataFrame]) -> dict[BarKey, dict[str, Any]]:
        """Add one closed bar per series given; return each one's feature row (normalised, with ``warm``)."""
        wanted = {self._key(k): bar for k, bar in bars.items()}
        results: dict[BarKey, dict[str, Any]] = {}
        for key in (k for k in self.order if k in wanted):
            frame = self._frame(key, self._new_row(key, wanted[key]))
            peers = {k: b.select(*self.columns[k], BAR).lazy() for k, b in self._buffers.items()}
            peers[key] = frame.select(*self.columns[key], BAR).lazy()  # a series may be its own reference
            plan = self.pipeline.plan(key, frame.lazy(), frozenset(self.columns[key]), peers, incremental=True,
                                      keep_raw=True)
            names, states = self.outputs[key], self.states[key]
            last = plan.frame.tail(1).select(
                *self.columns[key], BAR, *(pl.col(RAW + n).alias(n) for n in names),
                *(STATE + s for s in states), *(pl.col(n).alias(f"__out__{n}") for n in names), WARM,
            ).collect(engine=ENGINE, optimizations=UNOPTIMISED)
            self._buffers[key] = pl.concat([self._buffers[key], last.select(self._buffers[key].columns)],
                                           how="vertical").tail(self.capacity)
            out = last.select(TIMESTAMP, *(pl.col(f"__out__{n}").alias(n) for n in names), WARM)
            results[key] = out.row(0, named=True)
        return results

    def _key(self, key: BarKey | str) -> BarKey:
        if isinstance(key, BarKey) and key in self._buffers:
            return key
        matches = [k for k in self._buffers if key in (k, str(k), k.instrument, k.symbol)]
        if len(matches) != 1:
            raise DataError(f"unknown series {key!r}; this engine has {', '.join(map(str, self._buffers))}")
        return matches[0]

    def feature_names(self, key: BarKey | str) -> list[str]:
        return list(self.outputs[self._key(key)])
