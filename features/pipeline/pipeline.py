"""The feature pipeline: a :class:`Dataset` in, causal feature frames or a :class:`FeaturePanel` out.

Per series, every feature is a polars expression over the bar frame.  The
expressions are compiled once per set of input columns (shared intermediates and
recursion states as hidden columns in dependency stages, then the outputs, each
masked by its warm-up), joins with other series and external sources follow,
then normalisation; series run in parallel.  ``warm`` is true where every
feature column has a value, and :meth:`FeaturePipeline.panel` keeps only the
warm rows of the timestamps all instruments share.  ``features`` is fixed when
the pipeline is built (compiled plans are cached).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import polars as pl

from features.data.schema import OHLCV_COLUMNS, REQUIRED_COLUMNS, TIMESTAMP, BarKey, DataError, Dataset
from features.panel import FeaturePanel
from features.pipeline.base import BAR, RAW, BuildContext, Feature, FrameFeature, Output, mask_warmup
from features.pipeline.catalog import build_features
from features.pipeline.config import FeatureConfig
from features.pipeline.external import ExternalFeature, ExternalSource
from features.pipeline.normalise import FittedScaler, plain_expressions, rolling_expressions

WARM = "warm"
ENGINE: Final = "in-memory"  # the streaming engine (polars default) is several times slower on rolling windows


@dataclass
class SeriesPlan:
    """The lazy computation of one series and what it will produce."""

    key: BarKey
    frame: pl.LazyFrame
    outputs: list[Output]
    states: list[str]

    @property
    def names(self) -> list[str]:
        return [o.name for o in self.outputs]


@dataclass
class Program:
    """The compiled per-series expressions for one set of input columns."""

    stages: list[list[pl.Expr]]  # shared intermediates and states, in dependency order
    outputs: dict[str, pl.Expr]  # one masked expression per output column
    states: list[str]
    features: list[Feature]


def with_bar_index(frame: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    return frame.lazy().with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias(BAR))


class FeaturePipeline:
    """Compute the configured features for every series of a dataset."""

    def __init__(self, config: FeatureConfig | None = None, *, sources: Sequence[ExternalSource] = (),
                 scaler: FittedScaler | None = None) -> None:
        self.config = config or FeatureConfig()
        self.features: list[Feature] = [*build_features(self.config), *(ExternalFeature.of(s) for s in sources)]
        self.scaler = scaler
        self._programs: dict[tuple[frozenset[str], bool], Program] = {}
        self._rolling: dict[tuple[Output, ...], list[list[pl.Expr]]] = {}

    @classmethod
    def from_config(cls, spec: str | Path = "default", **kwargs: Any) -> FeaturePipeline:
        """A pipeline from a name in configs/features or a YAML path."""
        return cls(FeatureConfig.load(spec), **kwargs)

    @property
    def max_warmup(self) -> int:
        return max((f.warmup for f in self.features), default=0)

    @property
    def lookback(self) -> int:
        """Bars of history one new bar's features depend on (the incremental engine keeps this many)."""
        norm = self.config.normalisation
        return max(self.max_warmup, norm.window if norm.method == "rolling" else 0) + 2

    # -- planning -----------------------------------------------------------------------------------------

    def _program(self, columns: frozenset[str], incremental: bool) -> Program:
        """Compile the per-series expressions once per column set; every series with those columns reuses them."""
        cached = self._programs.get((columns, incremental))
        if cached is not None:
            return cached
        ctx = BuildContext(None, columns, incremental)
        series = [f for f in self.features if not isinstance(f, FrameFeature) and f.applies(ctx)]
        outputs: dict[str, pl.Expr] = {}
        for feature in series:
            for name, expr in feature.expressions(ctx).items():
                outputs[name] = mask_warmup(expr, feature.warmup).alias(name)
        program = Program(ctx.stages(), outputs, ctx.states, series)
        self._programs[(columns, incremental)] = program
        return program

    def plan(self, key: BarKey, frame: pl.LazyFrame, columns: frozenset[str], peers: Mapping[BarKey, pl.LazyFrame],
             *, incremental: bool = False, normalise: bool = True, keep_raw: bool = False) -> SeriesPlan:
        """The lazy plan of one series; ``frame`` must carry the ``__bar`` index (and, if incremental, the
        frozen/seed/known columns of :mod:`features.pipeline.incremental`).  ``keep_raw`` also keeps the
        unnormalised outputs as ``__raw__<name>``."""
        program = self._program(columns, incremental)
        lazy = frame
        for stage in program.stages:
            lazy = lazy.with_columns(stage)
        ctx = BuildContext(key, columns, incremental, peers)
        lazy = ctx.settle(lazy.with_columns(*program.outputs.values()), list(program.outputs))
        joined = [f for f in self.features if isinstance(f, FrameFeature) and f.applies(ctx)]
        for feature in joined:
            lazy = ctx.settle(feature.apply(lazy, ctx), list(feature.names))
        active = {id(f) for f in (*program.features, *joined)}
        outputs = [o for f in self.features if id(f) in active for o in f.outputs()]
        if keep_raw:
            lazy = lazy.with_columns(pl.col(o.name).alias(RAW + o.name) for o in outputs)
        if normalise:
            for stage in self._normalisers(key, outputs):
                lazy = lazy.with_columns(stage)
        names = [o.name for o in outputs]
        warm = pl.all_horizontal(pl.col(n).is_not_null() for n in names) if names else pl.lit(True)
        return SeriesPlan(key, lazy.with_columns(warm.alias(WARM)), outputs, [*program.states, *ctx.states])

    def _normalisers(self, key: BarKey, outputs: list[Output]) -> list[list[pl.Expr]]:
        norm = self.config.normalisation
        if norm.method == "rolling":
            cached = self._rolling.get(tuple(outputs))
            if cached is None:  # the same expressions serve every series with these outputs
                cached = self._rolling[tuple(outputs)] = [rolling_expressions(outputs, norm.window, norm.clip,
                                                                              norm.relative_prices)]
            return cached
        if norm.method == "fitted":
            if self.scaler is None:
                raise DataError("normalisation 'fitted' needs a fitted scaler: call pipeline.fit(train_dataset) "
                                "or load the pipeline state saved with the model")
            return [self.scaler.expressions(key, outputs, norm.clip)]
        return [plain_expressions(outputs, norm.clip, norm.relative_prices)]

    def plans(self, dataset: Dataset, *, normalise: bool = True) -> list[SeriesPlan]:
        if not len(dataset):
            raise DataError(f"{dataset.name}: the dataset holds no series")
        for key in dataset.keys:
            missing = [c for c in REQUIRED_COLUMNS if c not in dataset[key].columns]
            if missing:
                raise DataError(f"{dataset.name}: series {key} lacks column(s) {', '.join(missing)}")
        peers = {key: with_bar_index(dataset[key]) for key in dataset.keys}
        return [self.plan(key, peers[key], frozenset(dataset[key].columns), peers, normalise=normalise)
                for key in dataset.keys]

    # -- batch ---------------------------------------------------------------------------------------------

    def transform(self, dataset: Dataset, *, normalise: bool = True) -> dict[BarKey, pl.DataFrame]:
        """Per series: timestamp, OHLCV, every feature column (null in warm-up) and ``warm``.

        ``normalise=False`` gives the raw values in their natural units (what TA-Lib computes)."""
        plans = self.plans(dataset, normalise=normalise)
        frames = pl.collect_all([p.frame.select(TIMESTAMP, *OHLCV_COLUMNS, *p.names, WARM) for p in plans],
                                engine=ENGINE)
        return {p.key: frame for p, frame in zip(plans, frames, strict=True)}

    def outputs(self, dataset: Dataset) -> dict[BarKey, list[Output]]:
        return {p.key: p.outputs for p in self.plans(dataset, normalise=False)}

    def feature_names(self, dataset: Dataset) -> list[str]:
        """The feature columns every series of the dataset gets (a DataError if they differ)."""
        return common_names({k: [o.name for o in outs] for k, outs in self.outputs(dataset).items()})

    def fit(self, train: Dataset) -> FeaturePipeline:
        """Fit what normalisation needs on the training split only (a no-op unless the method is 'fitted')."""
        if self.config.normalisation.method == "fitted":
            raw = self.transform(train, normalise=False)
            self.scaler = FittedScaler.fit(raw, self.outputs(train), self.config.normalisation.relative_prices)
        return self

    def panel(self, dataset: Dataset, *, drop_warmup: bool = True, columns: Sequence[str] | None = None,
              ) -> FeaturePanel:
        """The aligned float32 view: timestamps every series has, warm rows only (or warm-up zero-filled)."""
        return frames_to_panel(self.transform(dataset), drop_warmup=drop_warmup, columns=columns)

    # -- persistence ---------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {"config": self.config.to_dict(), "scaler": self.scaler.to_dict() if self.scaler else None}

    def save(self, path: str | Path) -> Path:
        """Config and fitted statistics as JSON, to store with a model and reload at inference."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.state_dict(), indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path, *, sources: Sequence[ExternalSource] = ()) -> FeaturePipeline:
        state = json.loads(Path(path).read_text())
        scaler = FittedScaler.from_dict(state["scaler"]) if state.get("scaler") else None
        return cls(FeatureConfig.from_dict(state["config"]), sources=sources, scaler=scaler)


def common_names(names: Mapping[BarKey, list[str]]) -> list[str]:
    keys = sorted(names)
    first = names[keys[0]]
    for key in keys[1:]:
        if names[key] != first:
            only_first = sorted(set(first) - set(names[key]))
            only_here = sorted(set(names[key]) - set(first))
            raise DataError(f"series {keys[0]} and {key} get different features (only {keys[0]}: "
                            f"{', '.join(only_first) or '-'}; only {key}: {', '.join(only_here) or '-'}); "
                            "a panel needs the same columns for every instrument")
    return list(first)


def frames_to_panel(frames: Mapping[BarKey, pl.DataFrame], *, drop_warmup: bool = True,
                    columns: Sequence[str] | None = None) -> FeaturePanel:
    """Inner-join feature frames on timestamp; keep rows warm for every instrument (or zero-fill warm-up)."""
    keys = sorted(frames)
    fixed = {TIMESTAMP, *OHLCV_COLUMNS, WARM}
    names = common_names({k: [c for c in frames[k].columns if c not in fixed] for k in keys})
    chosen = list(columns) if columns is not None else names
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        raise DataError(f"unknown feature column(s) {', '.join(unknown)}")
    timeline = frames[keys[0]].select(TIMESTAMP)
    for key in keys[1:]:
        timeline = timeline.join(frames[key].select(TIMESTAMP), on=TIMESTAMP, how="inner")
    aligned = [timeline.join(frames[k], on=TIMESTAMP, how="left", maintain_order="left") for k in keys]
    warm = np.logical_and.reduce([a[WARM].to_numpy() for a in aligned])
    if drop_warmup:
        aligned = [a.filter(pl.Series(warm)) for a in aligned]
        if not aligned[0].height:
            raise DataError(f"no row is warm for all of {', '.join(map(str, keys))}: the data is shorter than "
                            "the warm-up or the series do not overlap")
    else:
        aligned = [a.with_columns(pl.col(chosen).fill_null(0.0)) for a in aligned]
    features = np.stack([a.select(chosen).to_numpy().astype(np.float32) for a in aligned], axis=1)
    ohlcv = np.stack([a.select(OHLCV_COLUMNS).to_numpy().astype(np.float64) for a in aligned], axis=1)
    timestamps = aligned[0][TIMESTAMP].dt.replace_time_zone(None).to_numpy().astype("datetime64[us]")
    return FeaturePanel(timestamps, tuple(keys), tuple(chosen), features, ohlcv)
