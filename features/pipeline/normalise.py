"""Normalisation that uses only the past, so the same transform runs live bar by bar.

Each output column is treated by its :class:`~features.pipeline.base.Scale`:

* ``FIXED`` (flags, cyclic encodings): left as it is.
* ``BOUNDED`` (RSI, %B, correlations, z-scores): mapped affinely from its known range onto [-1, 1];
  no statistics, so no extra warm-up.
* ``LEVEL`` / ``SPREAD`` (price levels and distances): made unit-free first (``relative_prices``):
  ``x / close - 1`` and ``x / close``; then scaled like ``FREE``.
* ``FREE`` (returns, OBV, volatility...): ``rolling`` (default) z-scores against the mean and
  population std of the last ``window`` values, 0 on a flat window, computed per column by the
  one-pass kernel of :mod:`features.pipeline.rolling`; ``fitted`` uses one mean and
  std per instrument and column, fitted on the training split only and stored as JSON with the
  model; ``none`` leaves them unit-free but unscaled.

Everything is clipped to +-``clip``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import polars as pl

from features.data.schema import BarKey, DataError
from features.pipeline.base import Output, Scale


def unit_free(output: Output, relative_prices: bool) -> pl.Expr:
    value = pl.col(output.name)
    if relative_prices and output.scale is Scale.LEVEL:
        return value / pl.col("close") - 1.0
    if relative_prices and output.scale is Scale.SPREAD:
        return value / pl.col("close")
    return value


def bounded(output: Output, clip: float) -> pl.Expr:
    low, high = output.bounds
    middle, half = (low + high) / 2.0, (high - low) / 2.0
    return ((pl.col(output.name) - middle) / half).clip(-clip, clip).alias(output.name)


def bounded_expressions(outputs: Sequence[Output], clip: float) -> list[pl.Expr]:
    return [bounded(o, clip) for o in outputs if o.scale is Scale.BOUNDED]


@dataclass
class FittedScaler:
    """Per-instrument mean and std of every scaled column, fitted on training rows only."""

    relative_prices: bool = True
    stats: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)

    @classmethod
    def fit(cls, frames: Mapping[BarKey, pl.DataFrame], outputs: Mapping[BarKey, Sequence[Output]],
            relative_prices: bool = True) -> FittedScaler:
        """Fit on frames of raw features (training split only, with their ``warm`` column)."""
        scaler = cls(relative_prices)
        for key, frame in frames.items():
            scaled = [o for o in outputs[key] if o.scaled]
            rows = frame.filter(pl.col("warm"))
            if rows.height < 2:
                raise DataError(f"{key}: fewer than two warm training rows to fit the scaler on")
            moments = rows.select(
                *(unit_free(o, relative_prices).mean().alias(f"m:{o.name}") for o in scaled),
                *(unit_free(o, relative_prices).std(ddof=0).alias(f"s:{o.name}") for o in scaled),
            ).row(0, named=True)
            scaler.stats[str(key)] = {o.name: (float(moments[f"m:{o.name}"]), float(moments[f"s:{o.name}"]))
                                      for o in scaled}
        return scaler

    def expressions(self, key: BarKey, outputs: Sequence[Output], clip: float) -> list[pl.Expr]:
        stats = self.stats.get(str(key))
        if stats is None:
            raise DataError(f"the fitted scaler has no statistics for {key}; it was fitted on "
                            f"{', '.join(sorted(self.stats)) or 'nothing'}")
        out = bounded_expressions(outputs, clip)
        for o in (o for o in outputs if o.scaled):
            if o.name not in stats:
                raise DataError(f"the fitted scaler has no statistics for feature {o.name!r} of {key}")
            mean, std = stats[o.name]
            value = unit_free(o, self.relative_prices)
            scaled = (value - mean) / std if std > 0 and math.isfinite(std) else value * 0.0
            out.append(scaled.clip(-clip, clip).alias(o.name))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"relative_prices": self.relative_prices,
                "stats": {k: {n: list(v) for n, v in cols.items()} for k, cols in self.stats.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FittedScaler:
        stats = {k: {n: (float(v[0]), float(v[1])) for n, v in cols.items()} for k, cols in data["stats"].items()}
        return cls(bool(data["relative_prices"]), stats)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1, sort_keys=True))
        return path

    @classmethod
    def load(cls, path: str | Path) -> FittedScaler:
        return cls.from_dict(json.loads(Path(path).read_text()))


def _rolling_zscore(series: pl.Series, window: int, clip: float) -> pl.Series:
    # imported here: the compiled kernel needs numba, which only rolling normalisation should pay for
    from features.pipeline.rolling import rolling_zscore

    return rolling_zscore(series, window, clip)


def rolling_expressions(outputs: Sequence[Output], window: int, clip: float, relative_prices: bool,
                        ) -> list[pl.Expr]:
    """One stage: the fixed maps of bounded outputs, and the rolling z-score of every scaled output's
    unit-free value (one compiled pass per column, which polars runs in parallel over columns and series)."""
    score = partial(_rolling_zscore, window=window, clip=clip)
    return [*bounded_expressions(outputs, clip),
            *(unit_free(o, relative_prices).map_batches(score, return_dtype=pl.Float64).alias(o.name)
              for o in outputs if o.scaled)]


def plain_expressions(outputs: Sequence[Output], clip: float, relative_prices: bool) -> list[pl.Expr]:
    """Method 'none': unit removal and the fixed maps of bounded outputs, no statistics."""
    return [*bounded_expressions(outputs, clip),
            *(unit_free(o, relative_prices).alias(o.name) for o in outputs if o.scaled)]
