"""An agent's observation window, updated one closed bar at a time.

The features come from the run's fitted pipeline in incremental mode (equal to batch mode, see
:class:`features.pipeline.IncrementalFeatures`) and the run's feature selection, in the order the
network was trained on.  The window starts from the batch features of the history, so the first
decision after start-up already sees a full window; a bar that is not warm yet for every
instrument (too little history) is kept out of the window, as the training panel drops such rows.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from features.data.schema import TIMESTAMP, BarKey, DataError, Dataset
from features.pipeline import WARM, FeaturePipeline, FeatureSelection, IncrementalFeatures
from serve.execution.records import BarRecord


class LiveFeatures:
    """The last ``window`` feature rows [N, F] of ``keys``, flattened as the environment lays them out."""

    def __init__(self, pipeline: FeaturePipeline, selection: FeatureSelection | None, feature_names: Sequence[str],
                 keys: Sequence[BarKey], window: int, history: Dataset) -> None:
        self.keys, self.window = tuple(keys), int(window)
        self.feature_names = list(feature_names)
        missing = [str(k) for k in self.keys if k not in history.keys]
        if missing:
            raise DataError(f"the history has no bars of {', '.join(missing)}")
        self.engine = IncrementalFeatures(pipeline, history)
        self.rows: deque[np.ndarray] = deque(maxlen=self.window)
        for row in self._history_rows(pipeline, selection, history):
            self.rows.append(row)

    def _history_rows(self, pipeline: FeaturePipeline, selection: FeatureSelection | None,
                      history: Dataset) -> list[np.ndarray]:
        try:
            panel = pipeline.panel(history)
        except DataError:  # no warm row yet: the window fills as bars arrive
            return []
        if selection is not None:
            panel = selection.apply(panel)
        if list(panel.feature_names) != self.feature_names:
            raise DataError(f"the pipeline gives features {list(panel.feature_names)}, the agent expects "
                            f"{self.feature_names}")
        order = [panel.keys.index(k) for k in self.keys]
        return [panel.features[t][order].reshape(-1) for t in range(max(0, panel.n_bars - self.window), panel.n_bars)]

    def update(self, bars: Mapping[str, BarRecord]) -> np.ndarray | None:
        """Add one closed bar per instrument; the market part of an observation once the window is full."""
        new: dict[BarKey | str, Mapping[str, Any]] = {key: _bar_dict(bars, key) for key in self.keys}
        out = self.engine.update(new)
        if all(out[key][WARM] for key in self.keys):
            values = [[out[key][name] for name in self.feature_names] for key in self.keys]
            row = np.asarray(values, dtype=np.float32).reshape(-1)
            if not np.isfinite(row).all():
                raise DataError(f"features at {out[self.keys[0]][TIMESTAMP]} are not finite; the bars are "
                                "probably bad (zero or negative prices)")
            self.rows.append(row)
        return self.market() if len(self.rows) == self.window else None

    def market(self) -> np.ndarray:
        return np.concatenate(list(self.rows))


def _bar_dict(bars: Mapping[str, BarRecord], key: BarKey) -> dict[str, object]:
    bar = bars.get(key.instrument)
    if bar is None:
        raise DataError(f"no bar for {key.instrument} in this row")
    return {TIMESTAMP: bar.bar_time, "open": bar.open, "high": bar.high, "low": bar.low, "close": bar.close,
            "volume": bar.volume}
