"""Feature selection fitted on the training split only (Hydra group ``feature_selection``).

Methods: a correlation filter (drop the later feature of each pair whose absolute
correlation exceeds a threshold), recursive feature elimination with a logistic
regression, and random-forest impurity importance; RFE and tree importance run
after the correlation filter when a threshold is set.  The supervised methods
predict the *target*: whether the log return over the next ``horizon`` bars is
positive.  The target is the only quantity here that looks forward; it is built
inside the training span (its last ``horizon`` rows are dropped so it never reads
a validation close) and it is never a feature.  The result, the selected column
list, is saved as JSON with the run and applied unchanged at inference.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from features.data.schema import DataError
from features.panel import FeaturePanel
from features.pipeline.config import SELECTION_CONFIGS, from_dict, read_yaml

METHODS = ("none", "correlation", "rfe", "tree")


@dataclass
class SelectionConfig:
    method: str = "none"  # none | correlation | rfe | tree
    correlation_threshold: float | None = 0.95  # drop one of each pair with |corr| above this; null = no filter
    n_features: int = 20  # rfe / tree: how many features to keep
    horizon: int = 1  # target: sign of the log return over the next `horizon` bars
    max_rows: int = 20000  # rfe / tree: training rows used, evenly spaced over the training span
    rfe_step: float = 0.1  # rfe: fraction of the remaining features removed per round
    tree_estimators: int = 100  # tree: number of trees
    tree_max_depth: int = 6  # tree: maximum depth
    seed: int = 0  # random state of the estimators

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise DataError(f"feature_selection.method: {self.method!r} is not one of {', '.join(METHODS)}")
        if self.horizon < 1 or self.n_features < 1 or self.max_rows < 10:
            raise DataError("feature_selection: horizon and n_features must be >= 1, max_rows >= 10")

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> SelectionConfig:
        return from_dict(cls, values or {}, "feature_selection")

    @classmethod
    def load(cls, spec: str | Path) -> SelectionConfig:
        """A name in configs/feature_selection ('none', 'correlation', 'rfe', 'tree') or a YAML path."""
        return cls.from_dict(read_yaml(spec, SELECTION_CONFIGS, "feature selection"))


@dataclass
class FeatureSelection:
    """The selected feature columns and how they were chosen."""

    method: str
    selected: list[str]
    candidates: list[str]
    scores: dict[str, float] = field(default_factory=dict)  # importance (tree) or 1 / RFE rank
    dropped_correlated: dict[str, str] = field(default_factory=dict)  # dropped -> the kept feature it tracks
    train_start: str = ""
    train_end: str = ""  # last training timestamp used (ISO, UTC)
    rows: int = 0

    def apply(self, panel: FeaturePanel) -> FeaturePanel:
        missing = [n for n in self.selected if n not in panel.feature_names]
        if missing:
            raise DataError(f"the panel lacks selected feature(s) {', '.join(missing)}; was it built with the "
                            "same feature config?")
        index = [panel.feature_names.index(n) for n in self.selected]
        return FeaturePanel(panel.timestamps, panel.keys, tuple(self.selected), panel.features[:, :, index],
                            panel.ohlcv)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path) -> FeatureSelection:
        return cls(**json.loads(Path(path).read_text()))


def next_return_target(panel: FeaturePanel, horizon: int) -> np.ndarray:
    """[T - horizon, N]: 1.0 where log(close[t + horizon] / close[t]) > 0, else 0.0.

    The one forward-looking quantity of the project's feature code: a label for fitting the
    selection, computed from closes inside the panel it is given, never a feature."""
    close = panel.close
    if close.shape[0] <= horizon:
        raise DataError(f"the training span has {close.shape[0]} rows; the target needs more than {horizon}")
    return (np.log(close[horizon:] / close[:-horizon]) > 0).astype(np.float64)


def training_rows(panel: FeaturePanel, horizon: int, max_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Features and target as 2-D rows (time x instrument flattened), at most ``max_rows``, evenly spaced."""
    target = next_return_target(panel, horizon)
    x = panel.features[: len(target)].reshape(-1, panel.features.shape[2]).astype(np.float64)
    y = target.reshape(-1)
    if len(y) > max_rows:
        keep = np.linspace(0, len(y) - 1, max_rows).round().astype(int)
        x, y = x[keep], y[keep]
    return x, y


def correlation_filter(x: np.ndarray, names: list[str], threshold: float) -> tuple[list[str], dict[str, str]]:
    """Keep features in order; drop one whose |corr| with an already kept feature exceeds ``threshold``.

    Constant columns carry no information and are dropped too (recorded as tracking '')."""
    std = x.std(axis=0)
    constant = std == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.abs(np.corrcoef(x[:, ~constant], rowvar=False)) if (~constant).sum() > 1 else np.ones((1, 1))
    varying = [n for n, c in zip(names, constant, strict=True) if not c]
    kept: list[int] = []
    dropped = {n: "" for n, c in zip(names, constant, strict=True) if c}
    for i, name in enumerate(varying):
        twin = next((k for k in kept if corr[i, k] > threshold), None)
        if twin is None:
            kept.append(i)
        else:
            dropped[name] = varying[twin]
    return [varying[i] for i in kept], dropped


class FeatureSelector:
    """Fit a :class:`FeatureSelection` on a training panel."""

    def __init__(self, config: SelectionConfig | None = None) -> None:
        self.config = config or SelectionConfig()

    def fit(self, train: FeaturePanel) -> FeatureSelection:
        """``train`` must be the training split only (see :func:`train_split`)."""
        c = self.config
        names = list(train.feature_names)
        start, end = str(train.timestamps[0]), str(train.timestamps[-1])
        if c.method == "none":
            return FeatureSelection("none", names, names, train_start=start, train_end=end,
                                    rows=train.n_bars * len(train.keys))
        x, y = training_rows(train, c.horizon, c.max_rows)
        kept, dropped = (correlation_filter(x, names, c.correlation_threshold)
                         if c.correlation_threshold is not None else (names, {}))
        scores: dict[str, float] = {}
        if c.method in ("rfe", "tree"):
            columns = [names.index(n) for n in kept]
            scores = (self._rfe if c.method == "rfe" else self._tree)(x[:, columns], y, kept)
            kept = sorted(kept, key=lambda n: -scores[n])[: c.n_features]
            kept = [n for n in names if n in kept]  # keep the pipeline's column order
        return FeatureSelection(c.method, kept, names, scores, dropped, train_start=start, train_end=end, rows=len(y))

    def _rfe(self, x: np.ndarray, y: np.ndarray, names: list[str]) -> dict[str, float]:
        from sklearn.feature_selection import RFE
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        scaled = StandardScaler().fit_transform(x)
        keep = min(self.config.n_features, len(names))
        rfe = RFE(LogisticRegression(max_iter=500), n_features_to_select=keep, step=self.config.rfe_step)
        rfe.fit(scaled, y)
        return {n: 1.0 / float(rank) for n, rank in zip(names, rfe.ranking_, strict=True)}

    def _tree(self, x: np.ndarray, y: np.ndarray, names: list[str]) -> dict[str, float]:
        from sklearn.ensemble import RandomForestClassifier

        forest = RandomForestClassifier(n_estimators=self.config.tree_estimators,
                                        max_depth=self.config.tree_max_depth, random_state=self.config.seed,
                                        n_jobs=1)
        forest.fit(x, y)
        return {n: float(v) for n, v in zip(names, forest.feature_importances_, strict=True)}


def train_split(panel: FeaturePanel, train_end: datetime | np.datetime64 | str) -> FeaturePanel:
    """The rows strictly before ``train_end`` (a bar-open time; naive values are UTC)."""
    if isinstance(train_end, datetime) and train_end.tzinfo is not None:
        train_end = train_end.astimezone(UTC).replace(tzinfo=None)
    end = np.datetime64(train_end).astype("datetime64[us]")
    stop = int(np.searchsorted(panel.timestamps, end, side="left"))
    if stop < 2:
        raise DataError(f"no training rows before {train_end}: the panel starts at {panel.timestamps[0]}")
    return panel.slice(0, stop)
