"""Bundled real data and cost settings shared by the baseline, backtest and walk-forward tests."""

from __future__ import annotations

from functools import cache

from envs import CostConfig, EnvConfig, FeeSchedule
from features.data.registry import load_dataset
from features.data.schema import Dataset
from features.panel import FeaturePanel
from features.pipeline import FeaturePipeline


@cache
def dataset(name: str) -> Dataset:
    return load_dataset(name).dataset


@cache
def panel(name: str) -> FeaturePanel:
    """Minimal-pipeline features of a bundled dataset (warm rows only)."""
    return FeaturePipeline.from_config("minimal").panel(dataset(name))


def fee_only(fee: float = 0.001, slippage_bps: float = 0.0) -> CostConfig:
    """Fees and fixed slippage only: no volatility slippage and no market impact."""
    return CostConfig(default_fees=FeeSchedule(fee, fee), slippage_bps=slippage_bps, slippage_vol_mult=0.0,
                      impact_coef=0.0)


def config(costs: CostConfig | None = None, window: int = 32) -> EnvConfig:
    return EnvConfig(window=window, mode="eval", costs=costs or CostConfig())
