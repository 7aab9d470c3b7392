"""Backtest any policy (a trained agent or a baseline) through the trading environment.

The evaluation-span convention: to evaluate on the panel rows from ``first`` on, the environment
gets the rows from ``first - window`` (:func:`evaluation_panel`), so its first decision is at the
close of the bar before ``first`` and its first fill at the open of bar ``first``.  The equity
curve then starts with the initial cash at that close and covers exactly the evaluation bars.
The rows before the environment's panel can be handed to baselines as ``history`` so their
long windows are already warm; agents see only their observation window.

A baseline runs in :func:`rl.baselines.baseline_env_config` of the given config (the same costs,
window and cash, with the ``weights`` action scheme); an agent runs in the config as given.
"""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from envs import EnvConfig, TradingEnv
from features.data.schema import DataError
from features.panel import FeaturePanel
from rl.baselines import Baseline, BuyAndHold
from rl.evaluation.metrics import Metrics, compute_metrics
from rl.evaluation.reports import compare_table
from rl.policy import Policy

BENCHMARK = "buy_and_hold"
Moment = datetime | np.datetime64 | str


def as_datetime64(moment: Moment) -> np.datetime64:
    """A UTC instant as numpy datetime64[us] (naive datetimes and strings are UTC)."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    if isinstance(moment, datetime):
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC).replace(tzinfo=None)
        return np.datetime64(moment, "us")
    return moment.astype("datetime64[us]")


def evaluation_rows(panel: FeaturePanel, start: Moment | None, end: Moment | None, window: int) -> tuple[int, int]:
    """(first, stop): the panel rows of bars opening in ``[start, end)``; ``start=None`` is the first
    row with a full window before it, ``end=None`` the end of the panel."""
    first = window if start is None else int(np.searchsorted(panel.timestamps, as_datetime64(start), side="left"))
    stop = panel.n_bars if end is None else int(np.searchsorted(panel.timestamps, as_datetime64(end), side="left"))
    if first < window:
        raise DataError(f"evaluation start {start} leaves {first} bars before it, fewer than window={window}; "
                        f"the earliest start is {panel.timestamps[min(window, panel.n_bars - 1)]}")
    if first >= stop:
        raise DataError(f"no bars to evaluate in [{start}, {end}): the panel covers "
                        f"{panel.timestamps[0]} .. {panel.timestamps[-1]}")
    return first, stop


def evaluation_panel(panel: FeaturePanel, start: Moment | None, end: Moment | None, window: int) -> FeaturePanel:
    """The rows from ``window`` bars before ``start`` to ``end`` (exclusive): see the module docstring."""
    first, stop = evaluation_rows(panel, start, end, window)
    return panel.slice(first - window, stop)


def history_before(panel: FeaturePanel, start: Moment | None, window: int) -> FeaturePanel | None:
    """The rows before :func:`evaluation_panel`'s first row, for baselines to warm up on (None if none)."""
    first = window if start is None else int(np.searchsorted(panel.timestamps, as_datetime64(start), side="left"))
    return panel.slice(0, first - window) if first - window > 0 else None


def evaluation_ledger(ledger: pl.DataFrame, start_bar: int) -> pl.DataFrame:
    """The environment's ledger in the columns of :mod:`rl.evaluation.trades`.

    ``bar_index`` counts equity points (0 = the first decision bar ``start_bar``); ``qty`` and
    ``price`` are the fill's (the request's for orders that did not fill); ``slippage`` holds
    slippage plus market impact, both already inside the fill price.
    """
    return ledger.select(
        pl.coalesce("fill_time", "decision_time").alias("timestamp"),
        (pl.coalesce("fill_bar", "decision_bar") - start_bar).alias("bar_index"),
        "instrument",
        "side",
        pl.when(pl.col("status") == "filled").then("filled_quantity").otherwise("requested_quantity").alias("qty"),
        pl.coalesce("fill_price", "limit_price").alias("price"),
        "fee",
        (pl.col("slippage") + pl.col("impact")).alias("slippage"),
        "status",
        "order_id",
        "order_type",
    )


@dataclass
class BacktestResult:
    """One policy over one span: equity at every bar close, the order ledger, positions, metrics."""

    name: str
    equity: pd.Series  # net worth at each bar close (UTC bar-open times), first value = initial cash
    ledger: pl.DataFrame  # the environment's ledger (envs.LEDGER_COLUMNS)
    positions: pd.DataFrame  # units held per instrument at each equity point
    metrics: Metrics
    timeframe: str
    start_bar: int = 0  # panel row of the first equity point
    totals: dict[str, float] = field(default_factory=dict)  # fees, slippage, impact, notional, orders

    @property
    def trades_ledger(self) -> pl.DataFrame:
        """The ledger in :mod:`rl.evaluation.trades` columns (for reports and round trips)."""
        return evaluation_ledger(self.ledger, self.start_bar)

    @property
    def exposure(self) -> np.ndarray:
        """Gross units held (summed |units|) at each equity point: non-zero when anything is held."""
        return np.abs(self.positions.to_numpy()).sum(axis=1)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Automatic garbage collection off for the duration: a backtest allocates hundreds of thousands of
    short-lived lists, tuples and dicts (freed by reference counting), and with torch and Ray imported
    every collection walks ~400,000 objects, which made a backtest two to three times slower."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def run_episode(policy: Policy, env: TradingEnv) -> list[tuple[float, ...]]:
    """Reset env and policy, then step to the end; the units held at every equity point."""
    obs, info = env.reset()
    policy.reset(env)
    held = [info["positions"]]
    done = False
    step, act = env.step, policy.act
    while not done:
        obs, _, terminated, truncated, info = step(act(obs))
        held.append(info["positions"])
        done = terminated or truncated
    return held


def backtest(
    policy: Policy,
    panel: FeaturePanel,
    env_config: EnvConfig,
    timeframe: str | None = None,
    *,
    history: FeaturePanel | None = None,
    name: str | None = None,
) -> BacktestResult:
    """Run ``policy`` over the whole ``panel`` (evaluation mode) and measure it.

    ``history``: bars before ``panel`` a baseline may warm its signals up on (ignored by agents).
    """
    timeframe = timeframe or panel.keys[0].timeframe
    if isinstance(policy, Baseline):
        policy.history = history
        config = policy.env_config(env_config)
    else:
        config = dataclasses.replace(env_config, mode="eval")
    with gc_paused():
        env = TradingEnv(panel, config)
        held = run_episode(policy, env)
        equity = env.ledger.equity_curve()
        ledger = env.ledger.to_frame()
    positions = pd.DataFrame(np.asarray(held, dtype=np.float64), index=equity.index, columns=list(env.instruments))
    start = env.span.start
    gross = np.abs(positions.to_numpy()).sum(axis=1)
    metrics = compute_metrics(equity, timeframe, ledger=evaluation_ledger(ledger, start), positions=gross)
    return BacktestResult(name or str(getattr(policy, "name", "policy")), equity, ledger, positions, metrics,
                          timeframe, start, env.ledger.totals())


def buy_and_hold(panel: FeaturePanel, env_config: EnvConfig, timeframe: str | None = None) -> BacktestResult:
    """Buy-and-hold (equal parts of every instrument, bought at the first fill) on the same span and costs."""
    return backtest(BuyAndHold(), panel, env_config, timeframe, name=BENCHMARK)


def buy_and_hold_metrics(panel: FeaturePanel, env_config: EnvConfig, timeframe: str | None = None) -> Metrics:
    return buy_and_hold(panel, env_config, timeframe).metrics


def run_all(
    policies: Mapping[str, Policy],
    panel: FeaturePanel,
    env_config: EnvConfig,
    timeframe: str | None = None,
    *,
    history: FeaturePanel | None = None,
) -> dict[str, BacktestResult]:
    """Every policy on the same span, buy-and-hold first (added when not given)."""
    results = {}
    if BENCHMARK not in policies:
        results[BENCHMARK] = buy_and_hold(panel, env_config, timeframe)
    for name, policy in policies.items():
        results[name] = backtest(policy, panel, env_config, timeframe, history=history, name=name)
    return results


def metrics_table(results: Mapping[str, BacktestResult | Metrics]) -> pd.DataFrame:
    """Every metric (rows) of every result (columns)."""
    values = {name: r.metrics if isinstance(r, BacktestResult) else r for name, r in results.items()}
    keys: dict[str, None] = {}
    for metrics in values.values():
        keys.update(dict.fromkeys(metrics))
    return compare_table(values, metrics=list(keys))


def compare(
    policies: Mapping[str, Policy],
    panel: FeaturePanel,
    env_config: EnvConfig,
    timeframe: str | None = None,
    *,
    history: FeaturePanel | None = None,
) -> pd.DataFrame:
    """Side-by-side table: every metric of every policy (and buy-and-hold) on the same span."""
    return metrics_table(run_all(policies, panel, env_config, timeframe, history=history))


def jsonable(value: Any) -> Any:
    """Metrics for JSON: NaN as null, infinities as "inf" / "-inf"."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, float | np.floating):
        number = float(value)
        if np.isnan(number):
            return None
        return number if np.isfinite(number) else ("inf" if number > 0 else "-inf")
    return value
