"""Baseline policies that trade through the same environment and costs as the agents.

``make_baseline(name, params, train_panel)`` builds one by name (``BASELINES``); learned ones are
fitted on ``train_panel``.  ``applicable(name, panel)`` says whether a baseline makes sense on a
panel (ERC needs two instruments or more).  docs/evaluation.md documents every rule.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from features.data.schema import DataError
from features.panel import FeaturePanel
from rl.baselines.base import HOLD_TOLERANCE, Baseline, SignalContext, baseline_env_config, signal_context
from rl.baselines.learned import LearnedBaseline, knn, logistic, random_forest
from rl.baselines.portfolio import EqualRiskContribution, erc_weights, risk_contributions
from rl.baselines.rules import BuyAndHold, DonchianTrend, EqualWeight, MovingAverageCrossover, ZScoreReversion


@dataclass(frozen=True)
class BaselineSpec:
    """How to build one named baseline."""

    factory: Callable[..., Baseline]
    learned: bool = False  # needs a training panel
    min_instruments: int = 1
    defaults: Mapping[str, Any] | None = None  # keyword arguments the name implies


BASELINES: dict[str, BaselineSpec] = {
    "buy_and_hold": BaselineSpec(BuyAndHold),
    "equal_weight": BaselineSpec(EqualWeight),
    "equal_weight_rebalanced": BaselineSpec(EqualWeight, defaults={"rebalance_days": 7.0}),
    "ma_crossover": BaselineSpec(MovingAverageCrossover),
    "donchian": BaselineSpec(DonchianTrend),
    "zscore_reversion": BaselineSpec(ZScoreReversion),
    "erc": BaselineSpec(EqualRiskContribution, min_instruments=2),
    "knn": BaselineSpec(knn, learned=True),
    "random_forest": BaselineSpec(random_forest, learned=True),
    "logistic": BaselineSpec(logistic, learned=True),
}


def _spec(name: str) -> BaselineSpec:
    if name not in BASELINES:
        raise DataError(f"unknown baseline {name!r}; known: {', '.join(BASELINES)}")
    return BASELINES[name]


def make_baseline(name: str, params: Mapping[str, Any] | None = None,
                  train_panel: FeaturePanel | None = None) -> Baseline:
    """The baseline ``name`` with ``params``; a learned one is fitted on ``train_panel`` (required)."""
    spec = _spec(name)
    try:
        policy = spec.factory(**{**(spec.defaults or {}), **(params or {})})
    except TypeError as err:
        raise DataError(f"baseline {name!r}: bad parameters {dict(params or {})}: {err}") from err
    if spec.learned:
        if train_panel is None:
            raise DataError(f"baseline {name!r} learns from data: give it a training panel")
        assert isinstance(policy, LearnedBaseline)
        policy.fit(train_panel)
    return policy


def applicable(name: str, panel: FeaturePanel) -> bool:
    """Whether baseline ``name`` can run on ``panel`` (enough instruments)."""
    return len(panel.keys) >= _spec(name).min_instruments


def is_learned(name: str) -> bool:
    return _spec(name).learned


__all__ = [
    "BASELINES",
    "HOLD_TOLERANCE",
    "Baseline",
    "BaselineSpec",
    "BuyAndHold",
    "DonchianTrend",
    "EqualRiskContribution",
    "EqualWeight",
    "LearnedBaseline",
    "MovingAverageCrossover",
    "SignalContext",
    "ZScoreReversion",
    "applicable",
    "baseline_env_config",
    "erc_weights",
    "is_learned",
    "knn",
    "logistic",
    "make_baseline",
    "random_forest",
    "risk_contributions",
    "signal_context",
]
