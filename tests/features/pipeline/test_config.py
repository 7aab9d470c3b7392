"""Feature configs: YAML files mirror the dataclasses, bad keys and types are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from features.data.schema import DataError
from features.pipeline.config import FEATURE_CONFIGS, FeatureConfig
from features.pipeline.pipeline import FeaturePipeline
from features.pipeline.selection import SelectionConfig


def test_default_yaml_is_the_dataclass_default() -> None:
    assert FeatureConfig.load("default") == FeatureConfig()
    assert FeatureConfig.load(FEATURE_CONFIGS / "default.yaml") == FeatureConfig()


def test_minimal_has_sixteen_features_on_plain_ohlcv() -> None:
    pipeline = FeaturePipeline(FeatureConfig.load("minimal"))
    names = [n for f in pipeline.features if f.group != "microstructure" for n in f.names]
    assert len(names) == 16
    assert pipeline.lookback == 202


def test_from_dict_fills_defaults_and_converts_numbers() -> None:
    config = FeatureConfig.from_dict({"indicators": {"rsi": [7]}, "normalisation": {"clip": 5}})
    assert config.indicators.rsi == [7] and config.indicators.ema == [12, 26, 50]
    assert config.normalisation.clip == 5.0 and isinstance(config.normalisation.clip, float)
    assert FeatureConfig.from_dict(config.to_dict()) == config  # round trip (what OmegaConf.to_container gives)


@pytest.mark.parametrize(("values", "message"), [
    ({"indicatorz": {}}, "features: unknown field"),
    ({"indicators": {"rsi": 14}}, r"features.indicators.rsi: expected a list"),
    ({"indicators": {"rsi": ["14"]}}, r"features.indicators.rsi\[0\]: expected int"),
    ({"indicators": {"macd": [{"fast": 30, "slow": 26, "signal": 9}]}}, "fast period 30 must be shorter"),
    ({"patterns": {"candles": ["dojji"]}}, "unknown candle pattern 'dojji'"),
    ({"normalisation": {"method": "minmax"}}, "is not one of rolling, fitted, none"),
    ({"returns": {"horizons": [1, 1]}}, "produced twice"),
])
def test_bad_configs_are_named(values: dict[str, object], message: str) -> None:
    with pytest.raises(DataError, match=message):
        FeaturePipeline(FeatureConfig.from_dict(values))


def test_unknown_config_name(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not one of default, minimal"):
        FeatureConfig.load("huge")
    path = tmp_path / "mine.yaml"
    path.write_text("returns:\n  horizons: [2]\n")
    assert FeatureConfig.load(path).returns.horizons == [2]


@pytest.mark.parametrize("name", ["none", "correlation", "rfe", "tree"])
def test_selection_configs_load(name: str) -> None:
    assert SelectionConfig.load(name).method == name
