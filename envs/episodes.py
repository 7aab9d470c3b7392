"""Where episodes start and end, and the market data an augmented training episode steps through.

Bars are rows of the panel.  The first decision bar is ``window - 1`` (the
first with a full observation window).  Training episodes start uniformly at
random in ``[window - 1, T - 1 - episode_length]`` and last
``episode_length`` steps; evaluation runs from ``window - 1`` to ``T - 1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from envs.augment import Augmentation, EpisodeArrays
from envs.config import EnvConfig
from envs.market import MarketData
from envs.sizing import SizingRule
from features.data.schema import DataError, bars_per_year
from features.panel import FeaturePanel


@dataclass(frozen=True)
class Span:
    start: int  # first decision bar
    end: int  # last bar: the episode truncates after filling and marking it


def check_span(panel: FeaturePanel, config: EnvConfig) -> None:
    """Fail early when the panel is too short for the window or the training episode length."""
    bars, window = panel.n_bars, config.window
    if config.mode == "eval" and bars < window + 1:
        raise DataError(f"window of {window} bars is larger than the data: the panel has {bars} bars, an "
                        f"evaluation episode needs at least window + 1 = {window + 1}")
    if config.mode == "train" and bars < window + config.episode_length:
        raise DataError(
            f"training episodes of {config.episode_length} steps with a window of {window} need at least "
            f"{window + config.episode_length} bars, the panel has {bars}; shorten episode_length or window"
        )


def choose_span(panel: FeaturePanel, config: EnvConfig, rng: np.random.Generator, start: int | None) -> Span:
    """The span of the next episode; ``start`` forces the first decision bar (training mode)."""
    first = config.window - 1
    if config.mode == "eval":
        return Span(first if start is None else _checked_start(start, first, panel.n_bars - 2), panel.n_bars - 1)
    last = panel.n_bars - 1 - config.episode_length
    chosen = int(rng.integers(first, last + 1)) if start is None else _checked_start(start, first, last)
    return Span(chosen, chosen + config.episode_length)


def _checked_start(start: int, first: int, last: int) -> int:
    if not first <= start <= last:
        raise DataError(f"episode start {start} is outside [{first}, {last}] for this panel and config")
    return int(start)


def sizing_fractions(panel: FeaturePanel, rule: SizingRule) -> np.ndarray:
    return rule.fractions(panel.close, bars_per_year(panel.keys[0].timeframe))


def augmented_market(
    panel: FeaturePanel,
    config: EnvConfig,
    span: Span,
    rule: SizingRule,
    augmentations: Sequence[Augmentation],
    rng: np.random.Generator,
) -> tuple[MarketData, Span]:
    """Market data of one augmented episode and the span in its own bar numbering.

    The slice keeps enough history before the first observation window for
    the rolling cost and sizing estimates to see as many bars as they would
    on the full panel.
    """
    history = max(config.costs.vol_lookback, config.costs.volume_lookback, getattr(rule, "lookback", 0))
    low = max(0, span.start - (config.window - 1) - history)
    episode = EpisodeArrays(panel.features[low : span.end + 1].copy(), panel.ohlcv[low : span.end + 1].copy())
    for augmentation in augmentations:
        episode = augmentation(episode, rng)
    part = FeaturePanel(panel.timestamps[low : span.end + 1], panel.keys, panel.feature_names,
                        episode.features, episode.ohlcv)
    market = MarketData.build(part, config.costs, sizing_fractions(part, rule), offset=low)
    return market, Span(span.start - low, span.end - low)


def select_instruments(panel: FeaturePanel, wanted: Sequence[str] | None) -> FeaturePanel:
    """The panel restricted to ``wanted`` instruments ('exchange:SYMBOL'), in that order."""
    if wanted is None:
        return panel
    names = panel.instruments
    unknown = [w for w in wanted if w not in names and str(w).lower() not in [n.lower() for n in names]]
    if unknown:
        raise DataError(f"unknown instrument(s) {unknown}: the panel has {', '.join(names)}")
    if len(set(wanted)) != len(wanted):
        raise DataError(f"instruments {list(wanted)} name an instrument twice")
    lowered = [n.lower() for n in names]
    index = [lowered.index(str(w).lower()) for w in wanted]
    return FeaturePanel(panel.timestamps, tuple(panel.keys[i] for i in index), panel.feature_names,
                        panel.features[:, index], panel.ohlcv[:, index])
