"""The backtest runner: evaluation spans, ledger conversion, agents vs baselines, comparison tables."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from envs import EnvConfig, SchemeSpec
from features.data.schema import DataError
from features.panel import FeaturePanel
from features.pipeline.selection import train_split
from rl.backtest import (
    BENCHMARK,
    backtest,
    buy_and_hold_metrics,
    compare,
    evaluation_ledger,
    evaluation_panel,
    history_before,
    run_all,
)
from rl.baselines import BASELINES, applicable, make_baseline
from rl.evaluation.metrics import compute_metrics
from rl.policy import Policy
from tests.rl.backtest_data import config, fee_only, panel

FAST = {"random_forest": {"n_estimators": 5}, "knn": {"n_neighbors": 20}}


@pytest.fixture(scope="module")
def btc() -> FeaturePanel:
    full = panel("binance_btc_1h")
    return full.slice(full.n_bars - 5000, full.n_bars)


class BuyAtFirstBar(Policy):
    """An agent-like policy on the discrete scheme: buy all in once, then hold."""

    name = "agent"

    def _reset(self, env: Any) -> None:
        self.steps = 0

    def _act(self, observation: np.ndarray) -> int:
        self.steps += 1
        return 1 if self.steps == 1 else 0


def test_evaluation_panel_puts_the_first_fill_on_the_start_bar(btc: FeaturePanel) -> None:
    start, end = btc.timestamps[1000], btc.timestamps[3000]
    part = evaluation_panel(btc, start, end, 32)
    assert part.timestamps[0] == btc.timestamps[1000 - 32] and part.timestamps[-1] == btc.timestamps[2999]
    result = backtest(make_baseline("buy_and_hold"), part, config())
    assert result.equity.index[0].to_datetime64() == btc.timestamps[999]  # the decision close before the start
    assert result.equity.index[1].to_datetime64() == start and len(result.equity) == 2001  # 2,000 bars evaluated
    assert result.ledger["fill_time"][0].replace(tzinfo=None) == pd.Timestamp(start).to_pydatetime()
    history = history_before(btc, start, 32)
    assert history is not None and history.n_bars == 1000 - 32
    assert history_before(btc, btc.timestamps[32], 32) is None


def test_evaluation_panel_refuses_spans_without_room(btc: FeaturePanel) -> None:
    with pytest.raises(DataError, match="fewer than window=32"):
        evaluation_panel(btc, btc.timestamps[10], None, 32)
    with pytest.raises(DataError, match="no bars to evaluate"):
        evaluation_panel(btc, "2030-01-01", None, 32)
    assert evaluation_panel(btc, None, None, 32).n_bars == btc.n_bars


def test_history_warms_baselines_up_exactly_as_on_the_whole_panel(btc: FeaturePanel) -> None:
    policy = make_baseline("donchian", {"lookback_days": [2, 5, 20]})
    whole = policy.target_weights(btc)
    start = btc.timestamps[4000]
    policy.history = history_before(btc, start, 32)
    np.testing.assert_array_equal(policy.target_weights(evaluation_panel(btc, start, None, 32)), whole[4000 - 32 :])
    policy.history = None
    cold = policy.target_weights(evaluation_panel(btc, start, None, 32))
    assert cold[:100].sum() < whole[4000 - 32 : 4100 - 32].sum()  # without history the long channels start flat


def test_evaluation_ledger_maps_fills_onto_equity_points(btc: FeaturePanel) -> None:
    result = backtest(make_baseline("ma_crossover", {"fast": 10, "slow": 40}), btc.slice(0, 2000), config())
    ledger = result.trades_ledger
    fills = ledger.filter(ledger["status"] == "filled")
    assert fills.height == result.ledger.height > 20
    bars = fills["bar_index"].to_numpy()
    units = result.positions.to_numpy()[:, 0]
    assert (np.diff(units)[bars - 1] != 0).all()  # each fill changes the position at its equity point
    env = result.ledger
    np.testing.assert_allclose(fills["slippage"].to_numpy(), (env["slippage"] + env["impact"]).to_numpy())
    again = compute_metrics(result.equity, "1h", ledger=evaluation_ledger(result.ledger, result.start_bar),
                            positions=result.exposure)
    assert again == pytest.approx(result.metrics, nan_ok=True)
    assert result.metrics["n_trades"] == fills.height // 2  # long/flat: every exit closes one round trip
    assert result.metrics["exposure"] == pytest.approx(np.mean(units > 0))


def test_agents_run_in_their_own_scheme_and_baselines_in_weights(btc: FeaturePanel) -> None:
    part = btc.slice(0, 1500)
    agent_config = EnvConfig(mode="train", action=SchemeSpec("discrete"), costs=fee_only(0.002))
    agent = backtest(BuyAtFirstBar(), part, agent_config)
    bench = buy_and_hold_metrics(part, agent_config)
    assert agent.ledger.height == 1 and agent.metrics["total_return"] == pytest.approx(bench["total_return"], 1e-9)
    assert agent.ledger["fee"][0] == pytest.approx(0.002 * agent.ledger["notional"][0])


def test_compare_lists_buy_and_hold_and_every_applicable_baseline() -> None:
    full = panel("binance_1h")
    data = full.slice(full.n_bars - 2500, full.n_bars)
    train = train_split(full, data.timestamps[0]).slice(full.n_bars - 6000, full.n_bars - 2500)
    for part in (data, FeaturePanel(data.timestamps, data.keys[:1], data.feature_names, data.features[:, :1],
                                     data.ohlcv[:, :1])):
        names = [n for n in BASELINES if applicable(n, part) and n != BENCHMARK]
        learned_train = train if len(part.keys) > 1 else FeaturePanel(
            train.timestamps, train.keys[:1], train.feature_names, train.features[:, :1], train.ohlcv[:, :1])
        policies = {n: make_baseline(n, FAST.get(n), learned_train) for n in names}
        table = compare(policies, part, config())
        assert list(table.columns) == [BENCHMARK, *names]
        assert ("erc" in table.columns) == (len(part.keys) > 1)
        for metric in ("total_return", "sharpe", "sortino", "calmar", "max_drawdown", "win_rate", "profit_factor",
                       "avg_trade_return", "n_trades", "exposure", "turnover", "unfilled_order_pct"):
            assert metric in table.index
        assert table.loc["n_trades", "ma_crossover"] > 0 and np.isfinite(table.loc["sharpe"]).all()


def test_run_all_keeps_a_given_benchmark_and_uses_one_span(btc: FeaturePanel) -> None:
    part = btc.slice(0, 800)
    results = run_all({"buy_and_hold": make_baseline("buy_and_hold"), "zscore": make_baseline("zscore_reversion")},
                      part, config())
    assert list(results) == ["buy_and_hold", "zscore"]
    assert results["buy_and_hold"].equity.index.equals(results["zscore"].equity.index)
