"""Position sizing rules: how large a fraction of equity a position may take, per bar and instrument.

A rule turns the close prices into a [T, N] table of fractions once, at
construction, from data up to each bar only.  Action schemes multiply the
exposure they ask for by the fraction of the decision bar (see
:mod:`envs.actions`): an all-in buy targets ``fraction`` of equity, a sized
buy of 5% becomes ``5% * fraction``, target weights are scaled by it.
Orders that reduce a position are never scaled, so a rule can stop a
position from growing but never traps the agent in one.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from envs.rolling import log_returns, rolling_mean_std
from features.data.schema import DataError


class SizingRule(ABC):
    """Fraction of equity per (bar, instrument)."""

    name: ClassVar[str]

    def fractions(self, close: np.ndarray, bars_per_year: float) -> np.ndarray:
        """[T, N] fractions in [0, cap] from closes [T, N]; row t uses closes up to t."""
        out = np.asarray(self._fractions(np.asarray(close, dtype=np.float64), bars_per_year), dtype=np.float64)
        if out.shape != close.shape or not np.isfinite(out).all() or (out < 0).any():
            raise DataError(f"sizing rule {self.name!r} produced invalid fractions (shape {out.shape})")
        return out

    @abstractmethod
    def _fractions(self, close: np.ndarray, bars_per_year: float) -> np.ndarray: ...


def _positive(rule: str, **values: float) -> None:
    for key, value in values.items():
        if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
            raise DataError(f"sizing rule {rule!r}: {key} must be a positive number, got {value!r}")


class FixedFraction(SizingRule):
    """The same fraction of equity everywhere (1.0 = the full amount the action asks for)."""

    name = "fixed"

    def __init__(self, fraction: float = 1.0) -> None:
        _positive(self.name, fraction=fraction)
        self.fraction = float(fraction)

    def _fractions(self, close: np.ndarray, bars_per_year: float) -> np.ndarray:
        return np.full(close.shape, self.fraction)


class KellyFraction(SizingRule):
    """``multiplier * mean / variance`` of simple returns over a lookback, clipped to [0, cap].

    The growth-optimal fraction of a continuous-time bet; half Kelly
    (multiplier 0.5) is the usual practice because the mean is estimated
    with large error.  Bars with fewer than two returns get 0.
    """

    name = "kelly"

    def __init__(self, lookback: int = 168, multiplier: float = 0.5, cap: float = 1.0) -> None:
        _positive(self.name, lookback=lookback, multiplier=multiplier, cap=cap)
        self.lookback, self.multiplier, self.cap = int(lookback), float(multiplier), float(cap)

    def _fractions(self, close: np.ndarray, bars_per_year: float) -> np.ndarray:
        simple = np.expm1(log_returns(close))
        mean, std = rolling_mean_std(simple, self.lookback)
        variance = std * std
        with np.errstate(divide="ignore", invalid="ignore"):
            kelly = np.where(variance > 0, self.multiplier * mean / variance, 0.0)
        return np.clip(kelly, 0.0, self.cap)


class VolatilityTarget(SizingRule):
    """``target / realised volatility`` (annualised), clipped to [0, cap]; 0 until volatility is known."""

    name = "vol_target"

    def __init__(self, target: float = 0.5, lookback: int = 168, cap: float = 1.0) -> None:
        _positive(self.name, target=target, lookback=lookback, cap=cap)
        self.target, self.lookback, self.cap = float(target), int(lookback), float(cap)

    def _fractions(self, close: np.ndarray, bars_per_year: float) -> np.ndarray:
        _, sigma = rolling_mean_std(log_returns(close), self.lookback)
        annual = sigma * math.sqrt(bars_per_year)
        with np.errstate(divide="ignore"):
            scale = np.where(annual > 0, self.target / annual, 0.0)
        return np.clip(scale, 0.0, self.cap)


SIZING_RULES: dict[str, type[SizingRule]] = {
    rule.name: rule for rule in (FixedFraction, KellyFraction, VolatilityTarget)
}


def make_sizing_rule(name: str, params: dict[str, Any] | None = None) -> SizingRule:
    if name not in SIZING_RULES:
        raise DataError(f"unknown sizing rule {name!r}: choose from {', '.join(sorted(SIZING_RULES))}")
    try:
        return SIZING_RULES[name](**(params or {}))
    except TypeError as err:
        raise DataError(f"sizing rule {name!r}: bad parameters {params}: {err}") from err
