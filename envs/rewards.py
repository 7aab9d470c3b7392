"""Reward schemes, chosen by name in :class:`envs.config.EnvConfig`.

Every scheme reads the :class:`~envs.records.StepResult` of a step: net worth
before and after, and the fees, slippage, impact and notional traded during
it.  Returns are log returns of net worth, ``R_t = log(V_t / V_{t-1})``.

* ``log_return``: ``R_t``.
* ``sharpe`` / ``sortino``: the ratio over the last ``window`` returns
  (0 until ``min_periods``); Sortino divides the mean excess over ``target``
  by the downside deviation ``sqrt(mean(min(R - target, 0)^2))`` taken over
  all returns of the window.
* ``dsr``: the differential Sharpe ratio of Moody & Saffell (1998), with
  exponential moving estimates ``A_t`` of the first and ``B_t`` of the second
  moment of returns at rate ``eta``:
  ``D_t = (B_{t-1} dA_t - A_{t-1} dB_t / 2) / (B_{t-1} - A_{t-1}^2)^{3/2}``,
  ``dA_t = R_t - A_{t-1}``, ``dB_t = R_t^2 - B_{t-1}``, 0 while the variance is 0.
* ``drawdown_penalty``: ``-(1 - V_t / max V)``.
* ``turnover_penalty``: ``-traded notional / V_{t-1}``.
* ``cost_penalty``: ``-(fees + slippage + impact) / V_{t-1}``.
* ``combined``: a weighted sum of any of the above, e.g.
  ``{"components": [{"name": "log_return", "weight": 1}, {"name": "drawdown_penalty", "weight": 0.1}]}``
  or the short form ``{"components": {"log_return": 1, "drawdown_penalty": 0.1}}``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from envs.records import StepResult
from features.data.schema import DataError

_TINY = 1e-300  # net worth floor inside the log: a wiped-out account gives a very negative, finite reward


def log_return(step: StepResult) -> float:
    net_worth = step.net_worth
    return math.log((net_worth if net_worth > _TINY else _TINY) / step.prev_net_worth)


class RewardScheme(ABC):
    """Reward of each step; ``reset`` is called at the start of every episode."""

    name: ClassVar[str]

    def reset(self, initial_net_worth: float) -> None:  # noqa: B027 - stateless schemes need nothing
        """Forget the previous episode."""

    @abstractmethod
    def reward(self, step: StepResult) -> float:
        """Reward of the step just taken (called once per step, in order)."""


class LogReturn(RewardScheme):
    name = "log_return"

    def reward(self, step: StepResult) -> float:
        net_worth = step.net_worth
        return math.log((net_worth if net_worth > _TINY else _TINY) / step.prev_net_worth)


class RollingSharpe(RewardScheme):
    """Mean over standard deviation (sample) of the last ``window`` log returns."""

    name = "sharpe"

    def __init__(self, window: int = 64, min_periods: int = 8) -> None:
        if not (isinstance(window, int) and isinstance(min_periods, int) and 2 <= min_periods <= window):
            raise DataError(f"reward {self.name!r}: need ints 2 <= min_periods <= window, "
                            f"got window={window!r}, min_periods={min_periods!r}")
        self.window, self.min_periods = window, min_periods
        self.reset(1.0)

    def reset(self, initial_net_worth: float) -> None:
        self.returns = [0.0] * self.window
        self.count = self.position = 0
        self.total = self.squares = 0.0

    def _push(self, value: float) -> None:
        """Add a return to the ring buffer and the running sums (recomputed each lap against drift)."""
        if self.count == self.window:
            old = self.returns[self.position]
            self.total -= old
            self.squares -= old * old
        else:
            self.count += 1
        self.returns[self.position] = value
        self.total += value
        self.squares += value * value
        self.position = (self.position + 1) % self.window
        if self.position == 0:
            self.total = math.fsum(self.returns)
            self.squares = math.fsum(r * r for r in self.returns)

    def reward(self, step: StepResult) -> float:
        self._push(log_return(step))
        if self.count < self.min_periods:
            return 0.0
        mean = self.total / self.count
        variance = (self.squares - self.count * mean * mean) / (self.count - 1)
        return mean / math.sqrt(variance) if variance > 1e-18 else 0.0


class RollingSortino(RollingSharpe):
    """Mean excess return over ``target`` divided by the downside deviation, over the last ``window`` returns."""

    name = "sortino"

    def __init__(self, window: int = 64, min_periods: int = 8, target: float = 0.0) -> None:
        self.target = float(target)
        super().__init__(window, min_periods)

    def reward(self, step: StepResult) -> float:
        self._push(log_return(step))
        if self.count < self.min_periods:
            return 0.0
        target = self.target
        values = self.returns if self.count == self.window else self.returns[: self.count]
        # The window is small (tens of returns), so the exact sum is cheap and has no drift.
        downside = sum(min(r - target, 0.0) ** 2 for r in values) / self.count
        excess = self.total / self.count - target
        return excess / math.sqrt(downside) if downside > 1e-18 else 0.0


class DifferentialSharpe(RewardScheme):
    """Moody & Saffell's differential Sharpe ratio: the step's marginal effect on an EMA Sharpe ratio."""

    name = "dsr"

    def __init__(self, eta: float = 0.01, warmup: int = 0) -> None:
        if not (isinstance(eta, int | float) and 0.0 < eta < 1.0) or not (isinstance(warmup, int) and warmup >= 0):
            raise DataError(f"reward {self.name!r}: need 0 < eta < 1 and an int warmup >= 0, got {eta!r}, {warmup!r}")
        self.eta, self.warmup = float(eta), warmup
        self.reset(1.0)

    def reset(self, initial_net_worth: float) -> None:
        self.first_moment = self.second_moment = 0.0  # A_t, B_t
        self.steps = 0

    def reward(self, step: StepResult) -> float:
        value = log_return(step)
        a, b = self.first_moment, self.second_moment
        delta_a, delta_b = value - a, value * value - b
        variance = b - a * a
        self.first_moment = a + self.eta * delta_a
        self.second_moment = b + self.eta * delta_b
        self.steps += 1
        if variance <= 1e-18 or self.steps <= self.warmup:
            return 0.0
        return (b * delta_a - 0.5 * a * delta_b) / variance**1.5


class DrawdownPenalty(RewardScheme):
    name = "drawdown_penalty"

    def reset(self, initial_net_worth: float) -> None:
        self.peak = initial_net_worth

    def reward(self, step: StepResult) -> float:
        if step.net_worth > self.peak:
            self.peak = step.net_worth
        return -(1.0 - step.net_worth / self.peak)


class TurnoverPenalty(RewardScheme):
    name = "turnover_penalty"

    def reward(self, step: StepResult) -> float:
        return -step.traded_notional / step.prev_net_worth


class CostPenalty(RewardScheme):
    name = "cost_penalty"

    def reward(self, step: StepResult) -> float:
        return -(step.fees + step.slippage + step.impact) / step.prev_net_worth


class Combined(RewardScheme):
    """Weighted sum of other schemes, for multi-objective training."""

    name = "combined"

    def __init__(self, components: Sequence[Mapping[str, Any]] | Mapping[str, float]) -> None:
        if isinstance(components, Mapping):
            components = [{"name": key, "weight": weight} for key, weight in components.items()]
        if not components:
            raise DataError("reward 'combined' needs at least one component")
        self.parts: list[tuple[float, RewardScheme]] = []
        for part in components:
            name, weight = part.get("name"), part.get("weight", 1.0)
            if name == self.name or not isinstance(name, str):
                raise DataError(f"reward 'combined': bad component {dict(part)}")
            if not (isinstance(weight, int | float) and math.isfinite(weight)):
                raise DataError(f"reward 'combined': weight of {name!r} must be a finite number, got {weight!r}")
            self.parts.append((float(weight), make_reward_scheme(name, part.get("params"))))

    def reset(self, initial_net_worth: float) -> None:
        for _, part in self.parts:
            part.reset(initial_net_worth)

    def reward(self, step: StepResult) -> float:
        return sum(weight * part.reward(step) for weight, part in self.parts)


REWARD_SCHEMES: dict[str, type[RewardScheme]] = {
    scheme.name: scheme
    for scheme in (LogReturn, RollingSharpe, RollingSortino, DifferentialSharpe, DrawdownPenalty,
                   TurnoverPenalty, CostPenalty, Combined)
}


def make_reward_scheme(name: str, params: Mapping[str, Any] | None = None) -> RewardScheme:
    if name not in REWARD_SCHEMES:
        raise DataError(f"unknown reward scheme {name!r}: choose from {', '.join(sorted(REWARD_SCHEMES))}")
    try:
        return REWARD_SCHEMES[name](**dict(params or {}))
    except TypeError as err:
        raise DataError(f"reward scheme {name!r}: bad parameters {dict(params or {})}: {err}") from err
