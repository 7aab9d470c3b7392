"""The gymnasium trading environment over a :class:`~features.panel.FeaturePanel`.

One step: the agent acts at the close of bar ``t`` (it has seen features up
to ``t``), the action scheme turns the action into orders, the broker fills
them on bar ``t + 1`` (open for market orders, the bar's range for limit
orders), the portfolio is marked at the close of ``t + 1``, and the reward,
the observation ending at ``t + 1`` and the info dict are returned.

Info keys (every step, and ``reset``): ``bar`` (panel row of the close just
marked), ``net_worth``, ``cash``, ``positions`` (units per instrument, a
tuple), ``fees_paid``, ``slippage_paid``, ``impact_paid`` (quote currency,
this step), ``orders_placed``, ``orders_filled``, ``orders_unfilled`` (this
step; unfilled = expired, rejected or cancelled).  The episode's ledger and
equity curve are on :attr:`TradingEnv.ledger`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.actions import make_action_scheme
from envs.augment import make_augmentation
from envs.broker import Broker
from envs.config import EnvConfig
from envs.episodes import Span, augmented_market, check_span, choose_span, select_instruments, sizing_fractions
from envs.ledger import Ledger
from envs.market import MarketData, MarketRow
from envs.observation import ObservationLayout
from envs.portfolio import Portfolio
from envs.records import StepResult
from envs.rewards import make_reward_scheme
from envs.sizing import make_sizing_rule
from features.data.schema import DataError
from features.panel import FeaturePanel


class TradingEnv(gym.Env[np.ndarray, Any]):
    """Single or multi-instrument, multi-exchange trading with exact accounting."""

    metadata: dict[str, Any] = {"render_modes": ["ansi"], "render_fps": 4}  # noqa: RUF012 - gymnasium API

    def __init__(
        self,
        panel: FeaturePanel,
        config: EnvConfig | Mapping[str, Any] | None = None,
        render_mode: str | None = None,
    ) -> None:
        if not isinstance(panel, FeaturePanel):
            raise DataError(f"TradingEnv needs a FeaturePanel, got {type(panel).__name__}")
        config = EnvConfig.from_dict(config) if isinstance(config, Mapping) else (config or EnvConfig())
        if render_mode not in (None, "ansi"):
            raise DataError(f"render_mode {render_mode!r} is not supported: use None or 'ansi'")
        panel = select_instruments(panel, config.instruments)
        if len({key.timeframe for key in panel.keys}) != 1:
            raise DataError(f"instruments have different bar lengths: {', '.join(map(str, panel.keys))}")
        check_span(panel, config)
        self.config, self.panel, self.render_mode = config, panel, render_mode
        self.sizing = make_sizing_rule(config.sizing.name, dict(config.sizing.params))
        self.full_market = MarketData.build(panel, config.costs, sizing_fractions(panel, self.sizing))
        self.actions = make_action_scheme(
            config.action.name, config.action.params, allow_short=config.allow_short, max_leverage=config.max_leverage
        )
        self.action_space = self.actions.space(len(panel.keys))
        self.layout = ObservationLayout(config.window, panel.instruments, panel.feature_names)
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(self.layout.size,), dtype=np.float32)
        self.rewards = make_reward_scheme(config.reward.name, config.reward.params)
        self.augmentations = [make_augmentation(a.name, a.params) for a in config.augmentations]
        self.broker = Broker(config.costs, config.allow_short, config.max_leverage)
        self._result = StepResult()
        self._row = MarketRow(self.full_market.min_notional)
        self._market_size = self.layout.market_size
        self._obs_size = self.layout.size
        self._row_size = len(panel.keys) * len(panel.feature_names)
        self._window_offset = self._row_size - self._market_size  # window of bar t starts at t * row + this
        self._window = config.window
        self._to_orders = self.actions.to_orders
        self._reward = self.rewards.reward
        self._floor = config.min_net_worth * config.initial_cash
        self._bar = self._end = -1  # no episode until reset
        self.market = self.full_market
        self._features, self._offset = self.market.features_flat, 0
        self.portfolio = Portfolio(len(panel.keys), config.initial_cash)
        self.ledger = Ledger(panel)
        self._record_equity = self.ledger.equity.append
        self.span = Span(-1, -1)

    # gymnasium API ---------------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode; ``options={"start": bar}`` fixes the first decision bar."""
        super().reset(seed=seed)
        if self.broker.pending:  # orders still working when an episode is abandoned end with it
            self.broker.close_all(self._result)
        start = None if options is None else options.get("start")
        self.span = choose_span(self.panel, self.config, self.np_random, start)
        self.market, local = self.full_market, self.span
        if self.augmentations and self.config.mode == "train":
            self.market, local = augmented_market(
                self.panel, self.config, self.span, self.sizing, self.augmentations, self.np_random
            )
        self._bar, self._end = local.start, local.end
        self._features, self._offset = self.market.features_flat, self.market.offset
        cash = self.config.initial_cash
        self.portfolio = Portfolio(len(self.panel.keys), cash, bar=self.span.start)
        self.ledger = Ledger(self.panel, start_bar=self.span.start)
        self._record_equity = self.ledger.equity.append
        self._record_equity(cash)
        self.broker.reset(self.market, self.portfolio, self.ledger)
        self.rewards.reset(cash)
        self._row.min_notional = self.market.min_notional
        result = self._result
        result.clear()
        result.bar, result.net_worth, result.prev_net_worth = self.span.start, cash, cash
        close = self.market.close_rows[self._bar]
        self.portfolio.mark(close)
        return self._observation(self._bar, close), self._info(result)

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        # The hot path: locals instead of attribute chains, no allocation beyond orders, obs and info.
        bar = self._bar
        if bar >= self._end:
            raise RuntimeError("the episode is over (or never started): call reset() first")
        market, portfolio, broker, result = self.market, self.portfolio, self.broker, self._result
        if result.placed or result.filled or result.unfilled:
            result.clear()
        row = self._row
        row.bar, row.close, row.scale = bar, market.close_rows[bar], market.scale_rows[bar]
        requests = self._to_orders(action, portfolio, row)
        if requests:
            broker.submit(requests, bar, result)
        bar += 1
        self._bar = bar
        if broker.pending:
            broker.execute(bar, result)
        close = market.close_rows[bar]
        result.prev_net_worth = portfolio.net_worth
        result.net_worth = net_worth = portfolio.mark(close)
        result.bar = bar + market.offset
        self._record_equity(net_worth)
        reward = self._reward(result)
        terminated = net_worth <= self._floor
        truncated = bar >= self._end
        if terminated or truncated:
            self._end = bar  # no further steps until reset
            if broker.pending:
                broker.close_all(result)
        # _observation and _info inlined: this runs once per step and the calls cost ~5% of it.
        start = bar * self._row_size + self._window_offset
        obs = self._features[start : start + self._obs_size].copy()
        obs[self._market_size :] = portfolio.state(close, result.bar, self._window)
        info = {
            "bar": result.bar,
            "net_worth": net_worth,
            "cash": portfolio.cash,
            "positions": tuple(portfolio.units),
            "fees_paid": result.fees,
            "slippage_paid": result.slippage,
            "impact_paid": result.impact,
            "orders_placed": result.placed,
            "orders_filled": result.filled,
            "orders_unfilled": result.unfilled,
        }
        return obs, reward, terminated, truncated and not terminated, info

    def _observation(self, bar: int, close: list[float]) -> np.ndarray:
        # One copy of the window plus the padding after it, whose tail then takes the portfolio state.
        start = bar * self._row_size + self._window_offset
        obs = self._features[start : start + self._obs_size].copy()
        obs[self._market_size :] = self.portfolio.state(close, bar + self._offset, self._window)
        return obs

    def _info(self, result: StepResult) -> dict[str, Any]:
        return {
            "bar": result.bar,
            "net_worth": result.net_worth,
            "cash": self.portfolio.cash,
            "positions": tuple(self.portfolio.units),
            "fees_paid": result.fees,
            "slippage_paid": result.slippage,
            "impact_paid": result.impact,
            "orders_placed": result.placed,
            "orders_filled": result.filled,
            "orders_unfilled": result.unfilled,
        }

    def render(self) -> str | None:  # type: ignore[override]
        if self.render_mode != "ansi":
            return None
        bar = self._bar + self.market.offset
        units = ", ".join(f"{name} {units:.6g}" for name, units in
                          zip(self.panel.instruments, self.portfolio.units, strict=True))
        return (f"bar {bar} ({self.panel.timestamps[bar]}): net worth {self.portfolio.net_worth:.2f}, "
                f"cash {self.portfolio.cash:.2f}, units [{units}]")

    # Beyond gymnasium ----------------------------------------------------------------------------

    @property
    def instruments(self) -> tuple[str, ...]:
        return self.panel.instruments

    def set_base_weights(self, weights: Sequence[float]) -> None:
        """Set the base allocation of the ``deltas`` action scheme (instruments, then cash; sums to 1)."""
        setter = getattr(self.actions, "set_base_weights", None)
        if setter is None:
            raise DataError(f"action scheme {self.actions.name!r} has no base allocation; use 'deltas'")
        setter(weights)
