"""Turn a :class:`FeatureConfig` into the list of :class:`Feature` objects it describes."""

from __future__ import annotations

from features.data.schema import DataError
from features.pipeline.base import Feature
from features.pipeline.candles import CandlePattern
from features.pipeline.config import FeatureConfig
from features.pipeline.cross_asset import CrossAsset
from features.pipeline.external import ExternalFeature, source_from_config
from features.pipeline.indicators import ATR, EMA, MACD, RSI, SMA, Bollinger
from features.pipeline.levels import Breakout, HigherHighs, SupportResistance
from features.pipeline.microstructure import BookImbalance, DepthImbalance, Spread
from features.pipeline.returns import LogReturn, Volatility, ZScore
from features.pipeline.timefeatures import DayOfWeek, HourOfDay, Sessions
from features.pipeline.volume import OBV, VolumeROC


def _indicators(config: FeatureConfig) -> list[Feature]:
    c = config.indicators
    return [*(RSI(n) for n in c.rsi), *(EMA(n) for n in c.ema), *(SMA(n) for n in c.sma),
            *(MACD(m.fast, m.slow, m.signal) for m in c.macd),
            *(Bollinger(b.period, b.stdev) for b in c.bollinger), *(ATR(n) for n in c.atr)]


def _volume(config: FeatureConfig) -> list[Feature]:
    c = config.volume
    return [*([OBV()] if c.obv else []), *(VolumeROC(n) for n in c.roc)]


def _returns(config: FeatureConfig) -> list[Feature]:
    c = config.returns
    return [*(LogReturn(h) for h in c.horizons), *(Volatility(w) for w in c.volatility),
            *(ZScore("close", w) for w in c.zscore_close), *(ZScore("volume", w) for w in c.zscore_volume)]


def _patterns(config: FeatureConfig) -> list[Feature]:
    c = config.patterns
    return [*(CandlePattern(p, c.star_penetration) for p in c.candles),
            *(SupportResistance(k) for k in c.pivots), *(Breakout(n) for n in c.breakout),
            *(HigherHighs(n) for n in c.hhll)]


def _time(config: FeatureConfig) -> list[Feature]:
    c = config.time
    return [*([HourOfDay()] if c.hour else []), *([DayOfWeek()] if c.weekday else []),
            *([Sessions()] if c.sessions else [])]


def _microstructure(config: FeatureConfig) -> list[Feature]:
    return [Spread(), BookImbalance(), DepthImbalance()]


def _cross_asset(config: FeatureConfig) -> list[Feature]:
    c = config.cross_asset
    return [CrossAsset(ref, tuple(c.horizons), c.corr_window) for ref in c.references]


def _external(config: FeatureConfig) -> list[Feature]:
    return [ExternalFeature.of(source_from_config(s.name, s.path, s.time_column, s.columns, s.max_age, s.delay,
                                                  s.fill_value)) for s in config.external]


GROUPS = {
    "indicators": _indicators, "volume": _volume, "returns": _returns, "patterns": _patterns,
    "time": _time, "microstructure": _microstructure, "cross_asset": _cross_asset,
}


def build_features(config: FeatureConfig) -> list[Feature]:
    """Every feature the config enables, in a fixed order; duplicate output names are an error."""
    features: list[Feature] = []
    for group, build in GROUPS.items():
        if getattr(config, group).enabled:
            try:
                features.extend(build(config))
            except ValueError as err:
                raise DataError(f"features.{group}: {err}") from err
    features.extend(_external(config))
    seen: dict[str, Feature] = {}
    for feature in features:
        for name in feature.names:
            if name in seen:
                raise DataError(f"feature column {name!r} produced twice ({seen[name].describe()} and "
                                 f"{feature.describe()}); remove the duplicate parameter")
            seen[name] = feature
    return features
