"""The aligned array view of a multi-instrument market that environments read.

The feature pipeline turns a :class:`~features.data.schema.Dataset` into a
:class:`FeaturePanel`: one common timeline for every instrument, the raw
bars as float64 and the model inputs as float32.  Row ``t`` of ``features``
uses data up to the close of bar ``t`` only; ``ohlcv[t]`` is bar ``t`` itself.
Environments decide at the close of ``t`` and fill at bar ``t+1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.data.schema import BarKey, DataError

OHLCV_FIELDS = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class FeaturePanel:
    timestamps: np.ndarray  # [T] datetime64[us], bar open times (UTC)
    keys: tuple[BarKey, ...]  # N instruments, in column order
    feature_names: tuple[str, ...]  # F names
    features: np.ndarray  # [T, N, F] float32, causal, no NaN
    ohlcv: np.ndarray  # [T, N, 5] float64: open, high, low, close, volume

    def __post_init__(self) -> None:
        t, n, f = len(self.timestamps), len(self.keys), len(self.feature_names)
        if self.features.shape != (t, n, f):
            raise DataError(f"features have shape {self.features.shape}, expected {(t, n, f)}")
        if self.ohlcv.shape != (t, n, len(OHLCV_FIELDS)):
            raise DataError(f"ohlcv has shape {self.ohlcv.shape}, expected {(t, n, len(OHLCV_FIELDS))}")
        bad = ~np.isfinite(self.features)
        if bad.any():
            row, inst, col = (int(i) for i in np.argwhere(bad)[0])
            raise DataError(
                f"feature '{self.feature_names[col]}' of {self.keys[inst]} is not finite at row {row} "
                f"({self.timestamps[row]}); {int(bad.sum())} such values"
            )

    @property
    def n_bars(self) -> int:
        return len(self.timestamps)

    @property
    def instruments(self) -> tuple[str, ...]:
        return tuple(k.instrument for k in self.keys)

    @property
    def close(self) -> np.ndarray:
        return self.ohlcv[:, :, 3]

    def slice(self, start: int, stop: int) -> FeaturePanel:
        return FeaturePanel(self.timestamps[start:stop], self.keys, self.feature_names,
                            self.features[start:stop], self.ohlcv[start:stop])
