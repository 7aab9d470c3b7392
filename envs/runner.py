"""Drive an environment with a policy function: the entry point for backtests and baselines."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from envs.config import EnvConfig
from envs.trading_env import TradingEnv
from features.panel import FeaturePanel

Policy = Callable[[np.ndarray, dict[str, Any]], Any]


def make_env(config: EnvConfig | Mapping[str, Any] | None, panel: FeaturePanel) -> TradingEnv:
    """A :class:`TradingEnv` over ``panel``; ``config`` may be an EnvConfig, a plain dict or None."""
    return TradingEnv(panel, config)


@dataclass
class EpisodeResult:
    """Everything one episode produced."""

    equity: pd.Series  # net worth at each bar close, first value = initial cash
    ledger: pl.DataFrame  # one row per order (see envs.ledger.LEDGER_COLUMNS)
    infos: list[dict[str, Any]] = field(default_factory=list)  # reset info, then one per step
    rewards: np.ndarray = field(default_factory=lambda: np.zeros(0))
    terminated: bool = False  # ended by the net-worth floor rather than by the end of the span
    totals: dict[str, float] = field(default_factory=dict)  # fees, slippage, impact, notional, orders

    @property
    def steps(self) -> int:
        return len(self.rewards)

    @property
    def total_reward(self) -> float:
        return float(self.rewards.sum())

    @property
    def final_net_worth(self) -> float:
        return float(self.equity.iloc[-1])


def run_policy(
    env: TradingEnv,
    policy_fn: Policy,
    *,
    seed: int | None = None,
    options: dict[str, Any] | None = None,
    max_steps: int | None = None,
) -> EpisodeResult:
    """Run one episode: ``policy_fn(obs, info) -> action`` at every decision bar."""
    obs, info = env.reset(seed=seed, options=options)
    infos: list[dict[str, Any]] = [info]
    rewards: list[float] = []
    terminated = truncated = False
    while not (terminated or truncated) and (max_steps is None or len(rewards) < max_steps):
        obs, reward, terminated, truncated, info = env.step(policy_fn(obs, info))
        rewards.append(float(reward))
        infos.append(info)
    return EpisodeResult(
        equity=env.ledger.equity_curve(),
        ledger=env.ledger.to_frame(),
        infos=infos,
        rewards=np.asarray(rewards, dtype=np.float64),
        terminated=bool(terminated),
        totals=env.ledger.totals(),
    )
