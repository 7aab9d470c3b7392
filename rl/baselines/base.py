"""The baseline interface: target portfolio weights computed once per episode, acted out bar by bar.

A baseline is a :class:`~rl.policy.Policy` that trades through the same environment, costs and
ledger as an agent, always with the ``weights`` action scheme (scores per instrument, then cash).
At ``reset`` it computes, vectorised over the environment's panel, the target weights of every
decision bar from data up to that bar's close (plus optional earlier ``history``, so long
windows are warm when an evaluation starts), and on which bars to trade: where the targets change
or a rebalancing period starts.  ``act`` is then an O(1) look-up.  On the other bars the action
is the portfolio's own current weights, which orders nothing (the scheme runs with a tiny
``rebalance_threshold`` so that rounding never turns a hold into a dust order).
"""

from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd

from envs import EnvConfig, SchemeSpec
from features.data.schema import DataError, bars_per_year, parse_timeframe
from features.panel import FeaturePanel
from rl.policy import Policy

HOLD_TOLERANCE = 1e-9  # weight changes below this share of net worth are not traded
_WEIGHT_SLACK = 1e-9


def baseline_env_config(config: EnvConfig) -> EnvConfig:
    """The agent's environment for a baseline: same costs, window, cash and instruments; evaluation
    mode; the ``weights`` action scheme, long only, no leverage, fixed sizing, no augmentation."""
    return dataclasses.replace(
        config,
        mode="eval",
        action=SchemeSpec("weights", {"rebalance_threshold": HOLD_TOLERANCE}),
        sizing=SchemeSpec("fixed"),
        allow_short=False,
        max_leverage=1.0,
        augmentations=(),
    )


def bars_in(days: float, timeframe: str) -> int:
    """Whole bars (at least one) in ``days`` of calendar time."""
    if not days > 0:
        raise DataError(f"a baseline period must be a positive number of days, got {days}")
    return max(1, round(timedelta(days=days) / parse_timeframe(timeframe)))


@dataclass(frozen=True)
class SignalContext:
    """What a baseline may read: the episode's panel and, before it, optional history bars.

    ``ohlcv`` and ``timestamps`` cover the history rows, then every panel row; ``offset``
    is the number of history rows, so panel row ``t`` is row ``offset + t`` here.
    """

    panel: FeaturePanel
    ohlcv: np.ndarray  # [H + T, N, 5]
    timestamps: np.ndarray  # [H + T] datetime64[us]
    offset: int

    @property
    def timeframe(self) -> str:
        return self.panel.keys[0].timeframe

    @property
    def n_instruments(self) -> int:
        return len(self.panel.keys)

    @property
    def periods_per_year(self) -> float:
        return bars_per_year(self.timeframe)

    def frame(self, field: int) -> pd.DataFrame:
        """One OHLCV field (0 open ... 3 close, 4 volume) over all rows, one column per instrument."""
        return pd.DataFrame(self.ohlcv[:, :, field])

    def tail(self, values: np.ndarray | pd.DataFrame) -> np.ndarray:
        """The panel's rows of a full-length array."""
        return np.asarray(values, dtype=np.float64)[self.offset :]

    def period_starts(self, days: float | None) -> np.ndarray:
        """True on the first bar of each ``days``-long calendar period (UTC, from the epoch), over all rows."""
        starts = np.zeros(len(self.timestamps), dtype=bool)
        if days is None:
            return starts
        period = np.timedelta64(int(timedelta(days=days) / timedelta(microseconds=1)), "us")
        index = (self.timestamps.astype("datetime64[us]") - np.datetime64(0, "us")) // period
        starts[1:] = index[1:] != index[:-1]
        starts[0] = True
        return starts


def signal_context(panel: FeaturePanel, history: FeaturePanel | None) -> SignalContext:
    """The panel, preceded by the history rows that open before its first bar (same instruments)."""
    if history is None:
        return SignalContext(panel, panel.ohlcv, panel.timestamps, 0)
    rows = int(np.searchsorted(history.timestamps, panel.timestamps[0], side="left"))
    names = [name.lower() for name in history.instruments]
    missing = [name for name in panel.instruments if name.lower() not in names]
    if missing:
        raise DataError(f"baseline history lacks instrument(s) {missing}; it has {', '.join(history.instruments)}")
    index = [names.index(name.lower()) for name in panel.instruments]
    ohlcv = np.concatenate([history.ohlcv[:rows][:, index], panel.ohlcv])
    timestamps = np.concatenate([history.timestamps[:rows], panel.timestamps])
    return SignalContext(panel, ohlcv, timestamps, rows)


def hold_state(entries: np.ndarray, exits: np.ndarray) -> np.ndarray:
    """1.0 from an entry bar until the bar before the next exit, else 0.0 (an entry wins a tie)."""
    marks = np.where(entries, 1.0, np.where(exits, 0.0, np.nan))
    return pd.DataFrame(marks).ffill().fillna(0.0).to_numpy()


class Baseline(Policy):
    """Target weights from the data, traded through the ``weights`` scheme; see the module docstring."""

    name = "baseline"
    rebalance_days: float | None = None  # also trade at the start of every such calendar period

    def __init__(self) -> None:
        self.history: FeaturePanel | None = None  # bars before the episode's panel, to warm signals up
        self._actions = np.zeros((0, 1))
        self._trade: list[bool] = []
        self._bar = 0
        self._portfolio: Any = None  # the environment's account, read to hold
        self._close: list[list[float]] = []

    @abc.abstractmethod
    def weights(self, context: SignalContext) -> np.ndarray:
        """[T, N] long-only target weights (summing to at most 1) of the panel's rows; row t may use
        ``context`` rows up to ``context.offset + t`` only."""

    def env_config(self, agent_config: EnvConfig) -> EnvConfig:
        """The environment this baseline runs in, given the agent's."""
        return baseline_env_config(agent_config)

    def target_weights(self, panel: FeaturePanel) -> np.ndarray:
        """Checked [T, N] targets over ``panel`` (with this baseline's history before it)."""
        return self._checked_weights(signal_context(panel, self.history))

    def _checked_weights(self, context: SignalContext) -> np.ndarray:
        weights = np.asarray(self.weights(context), dtype=np.float64)
        shape = (context.panel.n_bars, context.n_instruments)
        if weights.shape != shape:
            raise DataError(f"baseline {self.name!r} gave weights of shape {weights.shape}, expected {shape}")
        if not np.isfinite(weights).all() or (weights < 0).any() or (weights.sum(axis=1) > 1 + _WEIGHT_SLACK).any():
            raise DataError(f"baseline {self.name!r} gave weights that are not finite, long-only and summing to <= 1")
        return weights

    def trade_bars(self, context: SignalContext, weights: np.ndarray) -> np.ndarray:
        """Bars whose decision trades: the targets changed, or a rebalancing period starts."""
        changed = np.zeros(len(weights), dtype=bool)
        changed[1:] = (weights[1:] != weights[:-1]).any(axis=1)
        return changed | context.tail(context.period_starts(self.rebalance_days)).astype(bool)

    def _reset(self, env: Any) -> None:
        env = getattr(env, "unwrapped", env)  # through gymnasium wrappers to the TradingEnv
        panel: FeaturePanel = env.panel
        context = signal_context(panel, self.history)
        weights = self._checked_weights(context)
        cash = np.clip(1.0 - weights.sum(axis=1, keepdims=True), 0.0, None)
        self._actions = np.concatenate([weights, cash], axis=1)
        trade = self.trade_bars(context, weights)
        self._bar = int(env.span.start)
        trade[self._bar] = True  # the first decision sets up the portfolio
        # Python lists and a direct portfolio reference: per-step reads are several times cheaper than numpy's.
        self._trade, self._close = trade.tolist(), panel.close.tolist()
        self._portfolio = env.portfolio

    def _act(self, observation: np.ndarray) -> np.ndarray | list[float]:
        bar = self._bar
        self._bar = bar + 1
        if self._trade[bar]:
            return self._actions[bar]
        return self._hold(bar)

    def _hold(self, bar: int) -> list[float]:
        """The current portfolio weights (instruments, then cash): an action that orders nothing."""
        portfolio = self._portfolio
        worth = portfolio.net_worth
        if worth <= 0:
            return [0.0] * (len(portfolio.units) + 1)
        scale = 1.0 / worth
        held = [units * price * scale for units, price in zip(portfolio.units, self._close[bar], strict=True)]
        held.append(portfolio.cash * scale)
        return held
