"""Tests for rl.evaluation.regimes: the documented causal rule, attribution by regime, stress windows."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from features.data.schema import DataError
from rl.evaluation.regimes import (
    STRESS_WINDOWS,
    RegimeRule,
    label_regimes,
    metrics_by_regime,
    metrics_by_window,
)
from tests.rl.evaluation.toy import hourly_index


def up_then_down(n_up: int = 200, n_down: int = 200) -> pd.Series:
    """Daily closes rising 1% a day, then falling 1% a day."""
    steps = np.concatenate([np.full(n_up, 1.01), np.full(n_down, 0.99)])
    index = pd.date_range("2021-01-01", periods=n_up + n_down + 1, freq="D", tz="UTC")
    return pd.Series(100.0 * np.concatenate([[1.0], np.cumprod(steps)]), index=index)


def test_trend_labels_follow_the_trailing_90_day_return() -> None:
    close = up_then_down()
    labels = label_regimes(close, "1d")
    assert (labels["trend"].iloc[:90] == "warmup").all()
    assert labels["trailing_return"].iloc[90] == pytest.approx(1.01**90 - 1)
    assert labels["trend"].iloc[90] == "bull" and labels["trend"].iloc[-1] == "bear"
    values = close.to_numpy()
    trailing = values[90:] / values[:-90] - 1
    expected = np.where(trailing > 0.2, "bull", np.where(trailing < -0.2, "bear", "sideways"))
    assert (labels["trend"].iloc[90:].to_numpy() == expected).all()
    assert (labels["trend"] == "sideways").sum() > 0
    narrow = label_regimes(close, "1d", RegimeRule(window_days=10, trend_threshold=0.05))
    assert (narrow["trend"].iloc[:10] == "warmup").all() and narrow["trend"].iloc[
        10
    ] == "bull"  # 1.01^10 - 1 > 5%


def test_labels_are_causal() -> None:
    close = pd.Series(
        100 * np.exp(np.cumsum(np.random.default_rng(0).normal(0, 0.01, 3_000))), index=hourly_index(3_000)
    )
    changed = close.copy()
    changed.iloc[2_000:] *= 3.0
    rule = RegimeRule(window_days=20)
    before, after = label_regimes(close, "1h", rule), label_regimes(changed, "1h", rule)
    pd.testing.assert_frame_equal(before.iloc[:2_000], after.iloc[:2_000])


def test_volatility_labels_mark_the_turbulent_half() -> None:
    shocks = np.random.default_rng(1).normal(0, 1, 2_000) * np.where(np.arange(2_000) < 1_000, 0.005, 0.03)
    close = pd.Series(100 * np.exp(np.cumsum(shocks)), index=hourly_index(2_000))
    labels = label_regimes(close, "1h", RegimeRule(window_days=5))
    assert labels["trailing_volatility"].iloc[900] == pytest.approx(0.005 * math.sqrt(8760), rel=0.15)
    assert (labels["volatility"].iloc[1_300:] == "high").all()


def test_metrics_by_regime_by_hand() -> None:
    index = hourly_index(6)
    equity = pd.Series([100.0, 110.0, 121.0, 108.9, 98.01, 107.811], index=index)  # returns .1 .1 -.1 -.1 .1
    labels = pd.Series(["bull", "bull", "bear", "bear", "bull", "bull"], index=index)
    # return i is attributed to the label at bar i-1: bull gets r1, r2, r5; bear gets r3, r4
    table = metrics_by_regime(equity, "1h", labels)
    assert table.loc["bull", "total_return"] == pytest.approx(1.1**3 - 1)
    assert table.loc["bear", "total_return"] == pytest.approx(0.9**2 - 1)
    assert table.loc["bear", "max_drawdown"] == pytest.approx(0.81 - 1)
    assert table.loc["bull", "share_of_bars"] == pytest.approx(3 / 5)
    assert table.loc["bull", "n_bars"] == 3
    with pytest.raises(DataError, match="timestamps"):
        metrics_by_regime(equity.to_numpy(), "1h", labels)


def test_stress_windows_are_the_documented_dates() -> None:
    table = {w.name: (w.start, w.end) for w in STRESS_WINDOWS}
    assert table == {
        "covid_2020_03": (datetime(2020, 3, 1, tzinfo=UTC), datetime(2020, 4, 1, tzinfo=UTC)),
        "may_2021_crash": (datetime(2021, 5, 10, tzinfo=UTC), datetime(2021, 6, 30, tzinfo=UTC)),
        "finrl_2022_crash": (datetime(2022, 4, 30, tzinfo=UTC), datetime(2022, 6, 27, tzinfo=UTC)),
        "ftx_2022_11": (datetime(2022, 11, 6, tzinfo=UTC), datetime(2022, 11, 15, tzinfo=UTC)),
    }


def test_metrics_by_window_slices_half_open_with_the_prior_point() -> None:
    index = pd.date_range("2020-02-25", "2020-04-05", freq="h", tz="UTC")
    equity = pd.Series(100.0 * np.exp(0.001 * np.arange(len(index))), index=index)
    benchmark = pd.Series(100.0 * np.exp(-0.002 * np.arange(len(index))), index=index)
    table = metrics_by_window(equity, "1h", benchmark=benchmark)
    # March 2020 holds 31 * 24 = 744 hourly points; with the point at Feb 29 23:00 that is 744 returns
    assert table.loc["covid_2020_03", "n_bars"] == 744
    assert table.loc["covid_2020_03", "coverage"] == 1.0
    assert table.loc["may_2021_crash", "coverage"] == 0.0
    assert table.loc["covid_2020_03", "total_return"] == pytest.approx(math.exp(0.744) - 1)
    assert table.loc["covid_2020_03", "benchmark_total_return"] == pytest.approx(math.exp(-1.488) - 1)
    assert table.loc["covid_2020_03", "benchmark_max_drawdown"] == pytest.approx(math.exp(-1.488) - 1)
    assert table.loc["ftx_2022_11", "n_bars"] == 0 and math.isnan(table.loc["ftx_2022_11", "total_return"])
