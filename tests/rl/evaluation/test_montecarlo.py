"""Tests for rl.evaluation.montecarlo: block structure, exact small cases, moments, synthetic paths."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import polars as pl
import pytest

from features.data.schema import DataError
from features.data.synthetic import GeometricBrownianMotion
from rl.evaluation.montecarlo import (
    MonteCarloResult,
    bootstrap_indices,
    bootstrap_returns,
    bootstrap_trades,
    simulate_on_paths,
    synthetic_paths,
)


def continues(indices: np.ndarray, n_source: int) -> np.ndarray:
    """True where step t+1 is the observation after step t (same block)."""
    return indices[1:] == (indices[:-1] + 1) % n_source


def test_fixed_blocks_are_runs_of_exactly_the_block_length() -> None:
    indices = bootstrap_indices(100, 50, 30, 5, "fixed", np.random.default_rng(0))
    assert indices.shape == (50, 30) and indices.min() >= 0 and indices.max() < 100
    inside_block = (np.arange(1, 50) % 5 != 0)[:, None]
    assert continues(indices, 100)[np.broadcast_to(inside_block, (49, 30))].all()


def test_stationary_blocks_have_the_requested_mean_length() -> None:
    indices = bootstrap_indices(10_000, 2_000, 200, 20, "stationary", np.random.default_rng(1))
    n_blocks = (~continues(indices, 10_000)).sum() + indices.shape[1]
    assert indices.size / n_blocks == pytest.approx(20, rel=0.03)


def test_two_return_sample_by_hand() -> None:
    # any order of +10% and -50%: final 1.1 * 0.5 - 1 = -0.45; the -50% step is the worst drawdown
    result = bootstrap_returns([0.1, -0.5], 50, n_bars=2, block_length=2, method="fixed", seed=2)
    np.testing.assert_allclose(result.final_returns, -0.45)
    np.testing.assert_allclose(result.max_drawdowns, -0.5)
    assert result.probability_of_loss == 1.0


def test_constant_returns_give_one_outcome() -> None:
    result = bootstrap_returns(np.full(100, 0.001), 20, n_bars=1_000, seed=3)
    np.testing.assert_allclose(result.final_returns, 1.001**1_000 - 1, rtol=1e-9)
    np.testing.assert_allclose(result.max_drawdowns, 0.0, atol=1e-15)


def test_iid_bootstrap_log_growth_has_the_sample_moments() -> None:
    returns = np.random.default_rng(4).normal(0.0002, 0.01, 5_000)
    result = bootstrap_returns(returns, 2_000, n_bars=500, block_length=1, method="fixed", seed=5)
    log_final = np.log1p(result.final_returns)
    growth = np.log1p(returns)
    standard_error = math.sqrt(500) * float(growth.std()) / math.sqrt(2_000)
    assert log_final.mean() == pytest.approx(500 * growth.mean(), abs=4 * standard_error)
    assert log_final.std() == pytest.approx(math.sqrt(500) * growth.std(), rel=0.05)


def test_seeds_reproduce_and_summary_is_ordered() -> None:
    returns = np.random.default_rng(6).normal(0, 0.01, 1_000)
    first, again = bootstrap_returns(returns, 300, seed=7), bootstrap_returns(returns, 300, seed=7)
    np.testing.assert_array_equal(first.final_returns, again.final_returns)
    assert not np.array_equal(first.final_returns, bootstrap_returns(returns, 300, seed=8).final_returns)
    summary = first.summary()
    for name in ("final_return", "max_drawdown"):
        values = [summary[f"{name}_p{q}"] for q in (1, 5, 25, 50, 75, 95, 99)]
        assert values == sorted(values)
    worst = first.worst_case()
    assert worst["max_drawdown_p1"] == pytest.approx(np.percentile(first.max_drawdowns, 1))
    assert worst["final_return_p5"] == summary["final_return_p5"]


def test_trade_bootstrap_adds_pnl_and_floors_ruin() -> None:
    same = bootstrap_trades(np.full(3, 10.0), 100.0, 10, n_trades=5)
    np.testing.assert_allclose(same.final_returns, 0.5)
    np.testing.assert_allclose(same.max_drawdowns, 0.0)
    ruin = bootstrap_trades([-50.0, -60.0], 100.0, 10, n_trades=2, block_length=2)
    np.testing.assert_allclose(ruin.final_returns, -1.1)
    np.testing.assert_allclose(ruin.max_drawdowns, -1.0)


@pytest.mark.parametrize(
    "call",
    [
        lambda: bootstrap_returns([0.1], 10),
        lambda: bootstrap_returns([0.1, -1.5], 10),
        lambda: bootstrap_returns([0.1, 0.2], 10, method="jackknife"),  # type: ignore[arg-type]
        lambda: bootstrap_trades([1.0], 0.0),
        lambda: simulate_on_paths(lambda bars: bars["close"], []),
    ],
)
def test_bad_inputs_raise(call: object) -> None:
    with pytest.raises(DataError):
        call()  # type: ignore[operator]


def test_policy_on_stub_paths() -> None:
    paths = [pl.DataFrame({"close": [100.0, 110.0, 99.0]}), pl.DataFrame({"close": [50.0, 40.0, 60.0]})]
    result = simulate_on_paths(lambda bars: bars["close"], paths)
    np.testing.assert_allclose(result.final_returns, [-0.01, 0.2])
    np.testing.assert_allclose(result.max_drawdowns, [99 / 110 - 1, -0.2])
    assert isinstance(result, MonteCarloResult) and result.n_sims == 2


def test_buy_and_hold_on_gbm_paths_has_the_gbm_log_return() -> None:
    process = GeometricBrownianMotion(drift=0.5, volatility=0.6)
    paths = synthetic_paths(process, 150, 24 * 30, "1h", seed=11)
    assert not paths[0].equals(paths[1])

    def buy_and_hold(bars: pl.DataFrame) -> pd.Series:
        return pd.Series(np.concatenate([[bars["open"][0]], bars["close"].to_numpy()]))

    result = simulate_on_paths(buy_and_hold, paths)
    years = 24 * 30 / 8760
    log_final = np.log1p(result.final_returns)
    expected_mean, expected_std = (0.5 - 0.6**2 / 2) * years, 0.6 * math.sqrt(years)
    assert log_final.mean() == pytest.approx(expected_mean, abs=4 * expected_std / math.sqrt(150))
    assert log_final.std() == pytest.approx(expected_std, rel=0.25)
