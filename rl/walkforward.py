"""Walk-forward analysis: retrain on a rolling window, test on the months after it, stitch the tests.

Folds come from :func:`features.data.splits.walk_forward_folds` (default: one year of training,
three months of test, a new fold every month).  For every fold, ``make_policy(train, fold)`` builds
(trains) a policy from the training part only; it is backtested over the fold's whole test window
(the per-fold metrics).  Test windows overlap when the step is shorter than the test window, so the
out-of-sample curve uses each fold only until the next fold's test starts (always the most
recently trained policy): the segments' per-bar returns are chained into one equity curve, whose
metrics are the aggregate.  Each fold starts from cash, so the stitched curve pays for setting up
every fold's portfolio.

``make_policy`` is the training hook: baselines fit in it, and an agent can be trained in it.  It
receives the training part in the form of ``data``: panel rows for a :class:`FeaturePanel`, a
sliced :class:`Dataset` for a dataset.  It may return ``(policy, pipeline)`` to have its test
features built by its own fitted pipeline (dataset input only).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd
import polars as pl

from envs import EnvConfig
from features.data.schema import DataError, Dataset, parse_timeframe
from features.data.splits import Fold, slice_fold
from features.panel import FeaturePanel
from features.pipeline import FeaturePipeline
from rl.backtest import BacktestResult, as_datetime64, backtest, evaluation_panel, history_before
from rl.evaluation.metrics import Metrics, compute_metrics
from rl.evaluation.trades import round_trips, unfilled_order_pct
from rl.policy import Policy

PolicyFactory = Callable[[FeaturePanel | Dataset, Fold], Policy | tuple[Policy, FeaturePipeline]]


@dataclass
class WalkForwardResult:
    """Per-fold backtests, the stitched out-of-sample curve and its metrics."""

    folds: list[Fold]
    results: list[BacktestResult]  # each over its fold's whole test window
    segments: list[pd.Series]  # each fold's part of the out-of-sample curve, in its own currency
    equity: pd.Series  # the stitched curve, starting at the initial cash
    metrics: Metrics
    timeframe: str

    def fold_table(self) -> pd.DataFrame:
        """One row per fold: its dates and every metric over its test window."""
        rows = []
        for fold, result in zip(self.folds, self.results, strict=True):
            dates = {"train_start": fold.train_start, "train_end": fold.train_end,
                     "test_start": fold.test_start, "test_end": fold.test_end}
            rows.append({**dates, **result.metrics})
        return pd.DataFrame(rows, index=pd.Index([f.index for f in self.folds], name="fold"))


def train_rows(panel: FeaturePanel, fold: Fold) -> FeaturePanel:
    """Panel rows of bars that open at or after ``train_start`` and close by ``train_end``."""
    bar = np.timedelta64(int(parse_timeframe(panel.keys[0].timeframe) / timedelta(microseconds=1)), "us")
    first = int(np.searchsorted(panel.timestamps, as_datetime64(fold.train_start), side="left"))
    stop = int(np.searchsorted(panel.timestamps + bar, as_datetime64(fold.train_end), side="right"))
    if stop - first < 2:
        raise DataError(f"fold {fold.index}: fewer than 2 panel rows in its training window "
                        f"[{fold.train_start}, {fold.train_end})")
    return panel.slice(first, stop)


def _fold_policy(data: FeaturePanel | Dataset, panel: FeaturePanel | None, fold: Fold,
                 make_policy: PolicyFactory) -> tuple[Policy, FeaturePanel]:
    if isinstance(data, Dataset):
        made = make_policy(slice_fold(data, fold)[0], fold)
    else:
        made = make_policy(train_rows(data, fold), fold)
    if isinstance(made, tuple):
        policy, pipeline = made
        if not isinstance(data, Dataset):
            raise DataError("make_policy returned a pipeline, but walk_forward got a panel: pass the dataset")
        return policy, pipeline.panel(data)
    assert panel is not None
    return made, panel


def walk_forward(
    data: FeaturePanel | Dataset,
    folds: Sequence[Fold],
    make_policy: PolicyFactory,
    env_config: EnvConfig,
    *,
    pipeline: FeaturePipeline | None = None,
    timeframe: str | None = None,
) -> WalkForwardResult:
    """Train with ``make_policy`` and test on every fold; see the module docstring."""
    if not folds:
        raise DataError("walk_forward needs at least one fold")
    if isinstance(data, FeaturePanel):
        shared = data
    else:
        shared = (pipeline or FeaturePipeline.from_config("minimal")).panel(data)
    results, window = [], env_config.window
    for fold in folds:
        policy, panel = _fold_policy(data, shared, fold, make_policy)
        test = evaluation_panel(panel, fold.test_start, fold.test_end, window)
        history = history_before(panel, fold.test_start, window)
        results.append(backtest(policy, test, env_config, timeframe, history=history, name=f"fold {fold.index}"))
    ends = [*(f.test_start for f in folds[1:]), folds[-1].test_end]
    segments = [_until(r.equity, min(end, f.test_end)) for r, f, end in zip(results, folds, ends, strict=True)]
    equity = stitch(segments, env_config.initial_cash)
    timeframe = results[0].timeframe
    return WalkForwardResult(list(folds), results, segments, equity,
                             _aggregate(equity, results, segments, timeframe), timeframe)


def _until(equity: pd.Series, end: object) -> pd.Series:
    """The first point (the decision before the test) and the bars opening before ``end``."""
    keep = np.asarray(equity.index < pd.Timestamp(end))  # type: ignore[arg-type]
    keep[0] = True
    return equity[keep]


def stitch(segments: Sequence[pd.Series], initial: float) -> pd.Series:
    """Chain the per-bar returns of consecutive equity segments into one curve starting at ``initial``."""
    returns = [s.iloc[1:].to_numpy() / s.iloc[:-1].to_numpy() for s in segments]
    index = segments[0].index[:1].append([s.index[1:] for s in segments])
    if index.has_duplicates or not index.is_monotonic_increasing:
        raise DataError("walk-forward segments overlap or are out of order")
    values = initial * np.cumprod(np.concatenate([[1.0], *returns]))
    return pd.Series(values, index=index, name="net_worth")


def _aggregate(equity: pd.Series, results: Sequence[BacktestResult], segments: Sequence[pd.Series],
               timeframe: str) -> Metrics:
    """Metrics of the stitched curve; trades, positions and turnover from the fills inside the segments,
    each fold's currency amounts scaled to the stitched curve."""
    trades, notional, held, orders = [], 0.0, [np.zeros(1)], []
    position = 0
    for result, segment in zip(results, segments, strict=True):
        scale = float(equity.iloc[position]) / float(segment.iloc[0])
        ledger = result.trades_ledger.filter(pl.col("bar_index") < len(segment))
        fills = ledger.filter(pl.col("status") == "filled")
        notional += scale * float((fills["qty"] * fills["price"]).sum())
        closed = round_trips(ledger)
        trades.append(closed.with_columns(pl.col("net_pnl") * scale))
        held.append(result.exposure[1 : len(segment)])
        orders.append(ledger)
        position += len(segment) - 1
    metrics = compute_metrics(equity, timeframe, trades=pl.concat(trades), positions=np.concatenate(held),
                              traded_notional=notional)
    metrics["unfilled_order_pct"] = unfilled_order_pct(pl.concat(orders))
    metrics["n_folds"] = float(len(results))
    return metrics


SUMMARY_STATISTICS = ("median", "q25", "q75", "iqr", "min", "max", "mean", "n")


def seed_summary(runs: Sequence[Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """Per metric over several training seeds: median, quartiles, IQR, min, max, mean and the number of
    finite values (NaN and infinite values are left out; all-NaN metrics give NaN statistics)."""
    if not runs:
        raise DataError("seed_summary needs the metrics of at least one run")
    names: dict[str, None] = {}
    for run in runs:
        names.update(dict.fromkeys(run))
    summary = {}
    for name in names:
        values = np.array([float(run.get(name, np.nan)) for run in runs])
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            summary[name] = {stat: float("nan") for stat in SUMMARY_STATISTICS} | {"n": 0.0}
            continue
        q25, median, q75 = np.percentile(finite, [25, 50, 75])
        summary[name] = {"median": float(median), "q25": float(q25), "q75": float(q75), "iqr": float(q75 - q25),
                         "min": float(finite.min()), "max": float(finite.max()), "mean": float(finite.mean()),
                         "n": float(finite.size)}
    return summary
