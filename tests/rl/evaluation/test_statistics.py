"""Tests for rl.evaluation.statistics: PSR closed forms, the DSR paper example, PBO on noise and an edge."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import quantstats as qs
from scipy import stats as scipy_stats

from features.data.schema import DataError
from rl.evaluation.statistics import (
    EULER_MASCHERONI,
    deflated_sharpe_ratio,
    deflated_sharpe_ratio_of,
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
    probabilistic_sharpe_ratio_of,
    probability_of_backtest_overfitting,
    sharpe_std_error,
)


def normal_cdf(z: float) -> float:
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def test_psr_under_normal_returns_is_the_lo_closed_form() -> None:
    # SR = 0.1 per period, n = 101: z = 0.1 * sqrt(100) / sqrt(1 + 0.1^2 / 2) = 1 / sqrt(1.005)
    assert probabilistic_sharpe_ratio(0.1, 101) == pytest.approx(normal_cdf(1 / math.sqrt(1.005)), rel=1e-12)
    assert sharpe_std_error(0.1, 101) == pytest.approx(math.sqrt(1.005 / 100))
    # against a benchmark SR* = 0.05 the numerator shrinks to 0.05 * 10
    assert probabilistic_sharpe_ratio(0.1, 101, benchmark=0.05) == pytest.approx(
        normal_cdf(0.5 / math.sqrt(1.005))
    )


def test_psr_penalises_negative_skew_and_fat_tails() -> None:
    # skew -1, kurtosis 6: variance term 1 + 0.1 + 5/4 * 0.01 = 1.1125
    assert probabilistic_sharpe_ratio(0.1, 101, -1.0, 6.0) == pytest.approx(normal_cdf(1 / math.sqrt(1.1125)))
    assert probabilistic_sharpe_ratio(0.1, 101, -1.0, 6.0) < probabilistic_sharpe_ratio(0.1, 101)


def test_psr_matches_quantstats_on_skewed_returns() -> None:
    returns = np.random.default_rng(5).standard_t(4, 2_000) * 0.01 + 0.0005
    series = pd.Series(returns, index=pd.date_range("2020-01-01", periods=2_000, freq="D"))
    theirs = qs.stats.probabilistic_sharpe_ratio(series)
    assert probabilistic_sharpe_ratio_of(returns) == pytest.approx(theirs, rel=1e-9)


def test_psr_is_uniform_when_the_true_sharpe_is_zero() -> None:
    """Under the null (iid normal, mean 0) PSR is ~Uniform(0, 1): P(PSR > 0.95) ~ 5%."""
    samples = np.random.default_rng(6).normal(0.0, 0.01, size=(4_000, 250))
    sharpes = samples.mean(axis=1) / samples.std(axis=1, ddof=1)
    skews = scipy_stats.skew(samples, axis=1, bias=False)
    kurts = scipy_stats.kurtosis(samples, axis=1, fisher=False, bias=False)
    moments = zip(sharpes, skews, kurts, strict=True)
    values = np.array([probabilistic_sharpe_ratio(sr, 250, sk, ku) for sr, sk, ku in moments])
    assert np.mean(values > 0.95) == pytest.approx(0.05, abs=3 * math.sqrt(0.05 * 0.95 / 4_000))
    assert np.mean(values) == pytest.approx(0.5, abs=0.015)
    assert [probabilistic_sharpe_ratio_of(row) for row in samples[:20]] == pytest.approx(values[:20].tolist())


def test_dsr_reproduces_the_bailey_lopez_de_prado_2014_example() -> None:
    """100 trials, annual Sharpe variance 0.5, best annual Sharpe 2.5 over 1250 days, skew -3, kurtosis 10."""
    g = EULER_MASCHERONI
    by_hand = math.sqrt(0.5) * (
        (1 - g) * 2.3263478740408408 + g * 2.6802104449668875
    )  # Phi^-1(.99), (1-1/100e)
    assert expected_max_sharpe(100, 0.5) == pytest.approx(by_hand, rel=1e-9)
    assert expected_max_sharpe(100, 0.5) / math.sqrt(250) == pytest.approx(
        0.1132, abs=5e-5
    )  # paper: SR0 = 0.1132
    dsr = deflated_sharpe_ratio(2.5 / math.sqrt(250), 1250, 100, 0.5 / 250, skew=-3.0, kurtosis=10.0)
    assert dsr == pytest.approx(0.9004, abs=5e-4)  # paper: DSR = 0.9004


def test_expected_max_sharpe_tracks_simulated_maxima() -> None:
    maxima = np.random.default_rng(7).standard_normal((20_000, 100)).max(axis=1)
    assert expected_max_sharpe(100, 1.0) == pytest.approx(
        maxima.mean(), abs=0.04
    )  # approximation error ~0.02
    assert expected_max_sharpe(1, 0.3, mean_sharpe=0.2) == 0.2


def test_dsr_of_a_lucky_noise_pick_is_low() -> None:
    trials = np.random.default_rng(8).normal(0, 0.01, size=(500, 200))
    sharpes = trials.mean(axis=0) / trials.std(axis=0, ddof=1)
    best = trials[:, np.argmax(sharpes)]
    assert probabilistic_sharpe_ratio_of(best) > 0.95  # looks significant alone
    assert deflated_sharpe_ratio_of(best, sharpes) < 0.6  # but not after 200 trials
    with pytest.raises(DataError, match="at least 2 trials"):
        deflated_sharpe_ratio_of(best, sharpes[:1])


def test_pbo_is_one_half_for_pure_noise() -> None:
    """All configurations are noise: the in-sample winner's OOS rank is uniform, PBO ~ 0.5 on average."""
    values = [
        probability_of_backtest_overfitting(np.random.default_rng(seed).normal(0, 0.01, (500, 20)), 10).pbo
        for seed in range(200)
    ]
    assert np.mean(values) == pytest.approx(0.5, abs=4 * float(np.std(values)) / math.sqrt(200))


def test_pbo_is_zero_when_one_configuration_truly_dominates() -> None:
    returns = np.random.default_rng(9).normal(0, 0.01, (2_000, 30))
    returns[:, 7] += 0.003  # per-period Sharpe 0.3 against 0 for the rest
    result = probability_of_backtest_overfitting(returns, 16)
    assert result.n_splits == math.comb(16, 8)
    assert result.pbo == 0.0 and (result.chosen == 7).all() and result.probability_of_loss == 0.0


def test_pbo_custom_metric_matches_the_vectorised_sharpe() -> None:
    returns = np.random.default_rng(10).normal(0, 0.01, (402, 12))  # 402 = 8 * 50 + 2: two rows dropped
    fast = probability_of_backtest_overfitting(returns, 8)
    slow = probability_of_backtest_overfitting(returns, 8, metric=lambda r: r.mean(0) / r.std(0, ddof=1))
    np.testing.assert_allclose(fast.logits, slow.logits, rtol=1e-9)
    np.testing.assert_allclose(fast.out_of_sample, slow.out_of_sample, rtol=1e-9)


def test_pbo_logit_by_hand() -> None:
    """Two configs, two blocks: config 0 wins block A, config 1 wins B, so each split picks the OOS loser."""
    block_a = np.array([[0.02, -0.01], [0.01, 0.00], [0.03, -0.02]])
    block_b = -block_a
    result = probability_of_backtest_overfitting(np.vstack([block_a, block_b]), 2)
    # OOS rank of the chosen config is 1 of N = 2: w = 1/3, logit = ln(1/2)
    np.testing.assert_allclose(result.logits, [math.log(0.5), math.log(0.5)])
    assert result.pbo == 1.0


@pytest.mark.parametrize(
    ("shape", "partitions", "message"),
    [((100,), 4, "N >= 2"), ((100, 3), 5, "even"), ((10, 3), 8, "too few")],
)
def test_pbo_input_errors(shape: tuple[int, ...], partitions: int, message: str) -> None:
    with pytest.raises(DataError, match=message):
        probability_of_backtest_overfitting(np.zeros(shape), partitions)
