"""Training-episode augmentation hooks: transforms of one episode's bars and features.

In training mode the environment cuts the episode's span out of the panel
(with enough history before it for the observation window and the rolling
cost estimates), passes copies through each configured augmentation in
order, and steps through the result.  Evaluation episodes are never
augmented.  An augmentation must keep shapes, keep prices positive and
features finite, and use only the generator it is given for randomness, so
that the same seed gives the same episode.

* ``feature_noise``: Gaussian noise of standard deviation ``std`` on the features.
* ``time_shift``: the features lag the prices by a random 0..``max_shift``
  bars: the agent sees older information, never newer (a stale-data drill).
* ``synthetic``: replace the episode by a path from a generator, a callable
  ``(EpisodeArrays, numpy.random.Generator) -> EpisodeArrays`` given as an
  object or as an import path ``"package.module:function"``.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from features.data.schema import DataError


@dataclass(frozen=True)
class EpisodeArrays:
    features: np.ndarray  # [L, N, F] float32
    ohlcv: np.ndarray  # [L, N, 5] float64


class Augmentation(ABC):
    name: ClassVar[str]

    def __call__(self, episode: EpisodeArrays, rng: np.random.Generator) -> EpisodeArrays:
        out = self._apply(episode, rng)
        _check_episode(self.name, episode, out)
        return out

    @abstractmethod
    def _apply(self, episode: EpisodeArrays, rng: np.random.Generator) -> EpisodeArrays: ...


def _check_episode(name: str, before: EpisodeArrays, after: EpisodeArrays) -> None:
    if after.features.shape != before.features.shape or after.ohlcv.shape != before.ohlcv.shape:
        raise DataError(f"augmentation {name!r} changed the episode's shape: features {after.features.shape}, "
                        f"ohlcv {after.ohlcv.shape}; expected {before.features.shape}, {before.ohlcv.shape}")
    if not np.isfinite(after.features).all() or not np.isfinite(after.ohlcv).all():
        raise DataError(f"augmentation {name!r} produced non-finite values")
    if (after.ohlcv[:, :, :4] <= 0).any() or (after.ohlcv[:, :, 4] < 0).any():
        raise DataError(f"augmentation {name!r} produced non-positive prices or negative volume")


class FeatureNoise(Augmentation):
    name = "feature_noise"

    def __init__(self, std: float = 0.01) -> None:
        if not (isinstance(std, int | float) and std >= 0):
            raise DataError(f"augmentation {self.name!r}: std must be >= 0, got {std!r}")
        self.std = float(std)

    def _apply(self, episode: EpisodeArrays, rng: np.random.Generator) -> EpisodeArrays:
        noise = rng.standard_normal(episode.features.shape).astype(np.float32) * np.float32(self.std)
        return EpisodeArrays(episode.features + noise, episode.ohlcv)


class TimeShift(Augmentation):
    name = "time_shift"

    def __init__(self, max_shift: int = 2) -> None:
        if not (isinstance(max_shift, int) and max_shift >= 0):
            raise DataError(f"augmentation {self.name!r}: max_shift must be an int >= 0, got {max_shift!r}")
        self.max_shift = max_shift

    def _apply(self, episode: EpisodeArrays, rng: np.random.Generator) -> EpisodeArrays:
        shift = int(rng.integers(0, self.max_shift + 1))
        if shift == 0:
            return episode
        features = np.empty_like(episode.features)
        features[shift:] = episode.features[:-shift]
        features[:shift] = episode.features[0]  # the first rows repeat the oldest known values
        return EpisodeArrays(features, episode.ohlcv)


Generator = Callable[[EpisodeArrays, np.random.Generator], EpisodeArrays]


def _import(path: str) -> Generator:
    module, _, attribute = path.partition(":")
    try:
        found = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as err:
        raise DataError(f"augmentation 'synthetic': cannot import generator {path!r} ({err})") from err
    if not callable(found):
        raise DataError(f"augmentation 'synthetic': {path!r} is not callable")
    return found  # type: ignore[no-any-return]


class SyntheticPaths(Augmentation):
    name = "synthetic"

    def __init__(self, generator: Generator | str, probability: float = 1.0) -> None:
        self.generator = _import(generator) if isinstance(generator, str) else generator
        if not callable(self.generator):
            raise DataError(f"augmentation {self.name!r}: generator must be callable, got {generator!r}")
        if not 0.0 <= probability <= 1.0:
            raise DataError(f"augmentation {self.name!r}: probability must be in [0, 1], got {probability}")
        self.probability = float(probability)

    def _apply(self, episode: EpisodeArrays, rng: np.random.Generator) -> EpisodeArrays:
        if rng.random() >= self.probability:
            return episode
        out = self.generator(episode, rng)
        return EpisodeArrays(np.asarray(out.features, dtype=np.float32), np.asarray(out.ohlcv, dtype=np.float64))


AUGMENTATIONS: dict[str, type[Augmentation]] = {a.name: a for a in (FeatureNoise, TimeShift, SyntheticPaths)}


def make_augmentation(name: str, params: Mapping[str, Any] | None = None) -> Augmentation:
    if name not in AUGMENTATIONS:
        raise DataError(f"unknown augmentation {name!r}: choose from {', '.join(sorted(AUGMENTATIONS))}")
    try:
        return AUGMENTATIONS[name](**dict(params or {}))
    except TypeError as err:
        raise DataError(f"augmentation {name!r}: bad parameters {dict(params or {})}: {err}") from err
