"""Typed configuration of the feature pipeline (Hydra group ``features``, files in ``configs/features/``).

Every field is documented where it is declared; a YAML file mirrors the
dataclasses one to one.  :meth:`FeatureConfig.from_dict` accepts a plain dict
(``yaml.safe_load`` or ``OmegaConf.to_container``), rejects unknown keys and
wrong types with the path of the offending field, and fills omitted fields
with the defaults below (which are the full default feature set).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from features.configio import from_dict, read_yaml
from features.data.schema import DataError

CONFIG_ROOT = Path(__file__).resolve().parents[2] / "configs"
FEATURE_CONFIGS = CONFIG_ROOT / "features"
SELECTION_CONFIGS = CONFIG_ROOT / "feature_selection"
ALL_CANDLES = ["doji", "hammer", "shooting_star", "engulfing", "harami", "morning_star", "evening_star",
               "three_white_soldiers", "three_black_crows"]


@dataclass
class MACDParams:
    fast: int = 12  # fast EMA period
    slow: int = 26  # slow EMA period (must exceed fast)
    signal: int = 9  # EMA period of the signal line


@dataclass
class BollingerParams:
    period: int = 20  # SMA / standard-deviation window
    stdev: float = 2.0  # band half-width in population standard deviations


@dataclass
class IndicatorsConfig:
    enabled: bool = True  # compute this group at all
    rsi: list[int] = field(default_factory=lambda: [14])  # RSI periods (Wilder)
    ema: list[int] = field(default_factory=lambda: [12, 26, 50])  # EMA periods (SMA-seeded, as TA-Lib)
    sma: list[int] = field(default_factory=lambda: [20, 50])  # SMA periods
    macd: list[MACDParams] = field(default_factory=lambda: [MACDParams()])  # MACD line, signal, histogram
    bollinger: list[BollingerParams] = field(default_factory=lambda: [BollingerParams()])  # bands, %B, width
    atr: list[int] = field(default_factory=lambda: [14])  # ATR periods (Wilder)


@dataclass
class VolumeConfig:
    enabled: bool = True
    obv: bool = True  # on-balance volume
    roc: list[int] = field(default_factory=lambda: [10])  # volume rate-of-change periods (percent)


@dataclass
class ReturnsConfig:
    enabled: bool = True
    horizons: list[int] = field(default_factory=lambda: [1, 4, 24])  # log-return horizons in bars
    volatility: list[int] = field(default_factory=lambda: [24, 168])  # rolling std windows of 1-bar log returns
    zscore_close: list[int] = field(default_factory=lambda: [24, 168])  # rolling z-score windows of the close
    zscore_volume: list[int] = field(default_factory=lambda: [24])  # rolling z-score windows of the volume


@dataclass
class PatternsConfig:
    enabled: bool = True
    candles: list[str] = field(default_factory=lambda: list(ALL_CANDLES))  # candlestick patterns
    star_penetration: float = 0.3  # how far a morning/evening star's third candle closes into the first body
    pivots: list[int] = field(default_factory=lambda: [3, 12])  # fractal half-widths for support/resistance
    breakout: list[int] = field(default_factory=lambda: [24, 168])  # range-breakout windows
    hhll: list[int] = field(default_factory=lambda: [24])  # higher-highs / lower-lows windows


@dataclass
class TimeConfig:
    enabled: bool = True
    hour: bool = True  # hour of day, sin/cos
    weekday: bool = True  # day of week, sin/cos
    sessions: bool = True  # Asia / Europe / America session flags


@dataclass
class MicrostructureConfig:
    enabled: bool = True  # spread and book imbalance, only for series that have bid/ask or size columns


@dataclass
class CrossAssetConfig:
    enabled: bool = True  # only for datasets holding a reference series
    references: list[str] = field(default_factory=lambda: ["BTC"])  # base asset, symbol or exchange:symbol
    horizons: list[int] = field(default_factory=lambda: [1, 24])  # reference log-return horizons (1 always added)
    corr_window: int = 168  # window of the rolling return correlation with the reference


@dataclass
class ExternalSourceConfig:
    name: str = "external"  # feature prefix: ext_<name>_<column>
    path: str = ""  # parquet or CSV file of time-stamped rows
    time_column: str = "published_at"  # publication time of each row (UTC if naive)
    columns: list[str] | None = None  # value columns; null = every numeric column
    max_age: str | None = None  # e.g. "1d": older values count as missing; null = no limit
    delay: str | None = None  # e.g. "5m": extra publication latency before a row is visible
    fill_value: float = 0.0  # value used while missing (ext_<name>_available is then 0)


@dataclass
class NormalisationConfig:
    method: str = "rolling"  # rolling | fitted (train-split stats saved as JSON) | none
    window: int = 500  # rolling window in bars (method rolling)
    clip: float = 10.0  # clip scaled values to +-clip
    relative_prices: bool = True  # express price levels as x/close - 1 and price distances as x/close


@dataclass
class FeatureConfig:
    """The whole feature set: one section per group, external sources, and normalisation."""

    indicators: IndicatorsConfig = field(default_factory=IndicatorsConfig)
    volume: VolumeConfig = field(default_factory=VolumeConfig)
    returns: ReturnsConfig = field(default_factory=ReturnsConfig)
    patterns: PatternsConfig = field(default_factory=PatternsConfig)
    time: TimeConfig = field(default_factory=TimeConfig)
    microstructure: MicrostructureConfig = field(default_factory=MicrostructureConfig)
    cross_asset: CrossAssetConfig = field(default_factory=CrossAssetConfig)
    external: list[ExternalSourceConfig] = field(default_factory=list)
    normalisation: NormalisationConfig = field(default_factory=NormalisationConfig)

    def __post_init__(self) -> None:
        if self.normalisation.method not in ("rolling", "fitted", "none"):
            raise DataError(f"features.normalisation.method: {self.normalisation.method!r} is not one of "
                            "rolling, fitted, none")
        if self.normalisation.window < 2:
            raise DataError("features.normalisation.window must be >= 2")

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> FeatureConfig:
        return from_dict(cls, values or {}, "features")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def load(cls, spec: str | Path) -> FeatureConfig:
        """A name in configs/features ('default', 'minimal') or a path to a YAML file."""
        return cls.from_dict(read_yaml(spec, FEATURE_CONFIGS, "feature"))


T = TypeVar("T")
