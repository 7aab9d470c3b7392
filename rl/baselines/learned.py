"""Learned baselines: classifiers of the next bar's direction from the features of the decision bar.

``fit(train_panel)`` learns from the training panel only: the inputs are each instrument's feature
row at bar t, the label is whether the close of bar t + 1 is above the close of bar t, so the last
training bar (whose next close lies outside the training span) has no label and is left out.
Instruments are pooled into one model.  In an episode the policy buys 1/N of net worth of an
instrument when its predicted probability of a rise goes above ``threshold + band`` and sells it
when the probability falls below ``threshold - band`` (the band keeps a prediction hovering around
the threshold from trading every bar).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from features.data.schema import DataError
from features.panel import FeaturePanel
from rl.baselines.base import Baseline, SignalContext, hold_state

Classifier = Any  # a scikit-learn classifier: fit(X, y), predict_proba(X)


def training_rows(panel: FeaturePanel, max_rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(features [M, F], up [M]) pooled over instruments; ``max_rows`` keeps the latest bars of each."""
    if panel.n_bars < 3:
        raise DataError(f"a learned baseline needs at least 3 training bars, the training panel has {panel.n_bars}")
    close = panel.close
    up = (close[1:] > close[:-1]).astype(np.int64)  # [T - 1, N]: the label of bar t needs close t + 1
    features = panel.features[:-1]
    if max_rows is not None and len(up) > max_rows:
        up, features = up[-max_rows:], features[-max_rows:]
    x = features.transpose(1, 0, 2).reshape(-1, features.shape[2])
    y = up.T.reshape(-1)
    if np.unique(y).size < 2:
        raise DataError("the training panel's next-bar moves all go the same way: nothing to learn")
    return x.astype(np.float64), y


class LearnedBaseline(Baseline):
    """A classifier of the next move, fitted once on a training panel (see the module docstring)."""

    name = "learned"

    def __init__(self, make_model: Callable[[], Classifier], threshold: float = 0.5, band: float = 0.05,
                 max_train_rows: int | None = None, name: str = "learned") -> None:
        super().__init__()
        self.name = name
        if not (band >= 0.0 and threshold - band > 0.0 and threshold + band < 1.0):
            raise DataError(f"{name}: need 0 < threshold - band and threshold + band < 1 (band >= 0), "
                            f"got threshold {threshold}, band {band}")
        self.make_model, self.threshold, self.band = make_model, float(threshold), float(band)
        self.max_train_rows = max_train_rows
        self.model: Classifier | None = None
        self.feature_names: tuple[str, ...] = ()
        self.train_span: tuple[np.datetime64, np.datetime64] | None = None

    def fit(self, train_panel: FeaturePanel) -> LearnedBaseline:
        x, y = training_rows(train_panel, self.max_train_rows)
        self.model = self.make_model()
        with threadpool_limits(limits=1):  # small problems: threaded BLAS only contends (10x slower on 2 busy cores)
            self.model.fit(x, y)
        self.feature_names = train_panel.feature_names
        self.train_span = (train_panel.timestamps[0], train_panel.timestamps[-1])
        return self

    def predict_up(self, features: np.ndarray) -> np.ndarray:
        """Probability of a higher next close for each row of ``features`` [M, F]."""
        if self.model is None:
            raise DataError(f"baseline {self.name!r} is not fitted: call fit(train_panel) first")
        up_column = list(self.model.classes_).index(1)
        with threadpool_limits(limits=1):
            return np.asarray(self.model.predict_proba(np.asarray(features, dtype=np.float64))[:, up_column])

    def probabilities(self, panel: FeaturePanel) -> np.ndarray:
        """[T, N] predicted probability that each instrument's next close is higher."""
        if panel.feature_names != self.feature_names:
            raise DataError(f"baseline {self.name!r} was fitted on features {list(self.feature_names)}, the panel "
                            f"has {list(panel.feature_names)}")
        t, n, f = panel.features.shape
        return self.predict_up(panel.features.reshape(t * n, f)).reshape(t, n)

    def weights(self, context: SignalContext) -> np.ndarray:
        up = self.probabilities(context.panel)
        long = hold_state(up > self.threshold + self.band, up < self.threshold - self.band)
        return long / context.n_instruments


def knn(n_neighbors: int = 100, threshold: float = 0.5, band: float = 0.05,
        max_train_rows: int | None = 10_000) -> LearnedBaseline:
    """k nearest neighbours (Euclidean, on the already normalised features) among the latest training rows;
    brute force, the fastest search in 16+ dimensions."""
    return LearnedBaseline(lambda: KNeighborsClassifier(n_neighbors=n_neighbors, algorithm="brute"), threshold, band,
                           max_train_rows, name="knn")


def random_forest(n_estimators: int = 50, max_depth: int = 6, min_samples_leaf: int = 50, max_samples: float = 0.5,
                  seed: int = 0, threshold: float = 0.5, band: float = 0.05,
                  max_train_rows: int | None = None) -> LearnedBaseline:
    """A random forest of shallow trees, each on half the rows (one process: the cores belong to the backtests)."""
    def model() -> Classifier:
        return RandomForestClassifier(n_estimators=n_estimators, max_depth=max_depth, min_samples_leaf=min_samples_leaf,
                                      max_samples=max_samples, random_state=seed, n_jobs=1)

    return LearnedBaseline(model, threshold, band, max_train_rows, name="random_forest")


def logistic(c: float = 1.0, threshold: float = 0.5, band: float = 0.05,
             max_train_rows: int | None = None) -> LearnedBaseline:
    """L2-regularised logistic regression on standardised features."""
    return LearnedBaseline(lambda: make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=1000)),
                           threshold, band, max_train_rows, name="logistic")
