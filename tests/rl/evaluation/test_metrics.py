"""Tests for rl.evaluation.metrics: hand-computed values, QuantStats agreement, input checks, invariants."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import polars as pl
import pytest
import quantstats as qs
from hypothesis import given, settings
from hypothesis import strategies as st

from features.data.registry import load_dataset
from features.data.schema import DataError, bars_per_year
from rl.evaluation.metrics import (
    cagr,
    compute_metrics,
    drawdown_series,
    equity_series,
    max_drawdown_duration,
    rolling_sharpe,
    simple_returns,
    trade_metrics,
)
from tests.rl.evaluation.toy import hourly_index, noisy_equity

DAILY = pd.date_range("2024-01-01", periods=5, freq="D", tz="UTC")
# returns 0.2, -0.25, 0, 0.2: mean 0.0375, deviations .1625 -.2875 -.0375 .1625
HAND_EQUITY = pd.Series([100.0, 120.0, 90.0, 90.0, 108.0], index=DAILY)


def naive(series: pd.Series) -> pd.Series:
    return series.set_axis(series.index.tz_localize(None))


@pytest.fixture(scope="module")
def btc_close() -> pd.Series:
    frame = load_dataset("binance_btc_1h").dataset["BTC/USDT"]
    return pd.Series(frame["close"].to_numpy(), index=pd.DatetimeIndex(frame["timestamp"].to_pandas()))


def test_hand_computed_metrics() -> None:
    m = compute_metrics(HAND_EQUITY, "1d")
    variance = (0.1625**2 + 0.2875**2 + 0.0375**2 + 0.1625**2) / 3  # 0.045625
    assert m["total_return"] == pytest.approx(0.08)
    assert m["years"] == pytest.approx(4 / 365)
    assert m["annual_return"] == pytest.approx(1.08 ** (365 / 4) - 1)
    assert m["annual_volatility"] == pytest.approx(math.sqrt(variance) * math.sqrt(365))
    assert m["sharpe"] == pytest.approx(0.0375 / math.sqrt(variance) * math.sqrt(365))
    # downside deviation: only -0.25 is below 0 -> sqrt(0.0625 / 4) = 0.125
    assert m["sortino"] == pytest.approx(0.0375 / 0.125 * math.sqrt(365))
    assert m["max_drawdown"] == pytest.approx(90 / 120 - 1)
    assert m["calmar"] == pytest.approx((1.08 ** (365 / 4) - 1) / 0.25)
    # peak 120 on day 1; days 2, 3, 4 are below it -> 3 bars, 3 days under water
    assert m["max_drawdown_duration_bars"] == 3
    assert m["max_drawdown_duration"] == pytest.approx(3.0)
    assert math.isnan(m["win_rate"]) and m["n_trades"] == 0


def test_array_input_without_timestamps_uses_bar_count() -> None:
    m = compute_metrics(HAND_EQUITY.to_numpy(), "1d")
    assert m["years"] == pytest.approx(4 / 365)
    assert m["sharpe"] == pytest.approx(compute_metrics(HAND_EQUITY, "1d")["sharpe"])
    assert max_drawdown_duration(equity_series(HAND_EQUITY.to_numpy()), "12h") == (3, 1.5)


def test_years_follow_calendar_time_across_gaps() -> None:
    stamps = pd.DatetimeIndex(["2024-01-01 00:00", "2024-01-01 01:00", "2024-01-01 05:00"], tz="UTC")
    m = compute_metrics(pd.Series([100.0, 101.0, 102.0], index=stamps), "1h")
    assert m["years"] == pytest.approx(5 / 8760)
    assert m["annual_return"] == pytest.approx(1.02 ** (8760 / 5) - 1)


def test_trade_and_activity_metrics() -> None:
    trades = np.array([0.10, -0.05, 0.02, -0.01])
    m = trade_metrics(trades)
    assert m["win_rate"] == 0.5
    assert m["profit_factor"] == pytest.approx(0.12 / 0.06)
    assert m["avg_trade_return"] == pytest.approx(0.06 / 4)
    curve = pd.Series([100.0, 100.0, 110.0, 110.0], index=hourly_index(4))
    m = compute_metrics(curve, "1h", positions=[0, 1, 1, 0], traded_notional=210.0)
    assert m["exposure"] == 0.5
    assert m["turnover"] == pytest.approx(210 / 105)
    assert m["annual_turnover"] == pytest.approx(2.0 / (3 / 8760))


def test_no_losing_trade_gives_infinite_profit_factor() -> None:
    assert trade_metrics([0.01, 0.02])["profit_factor"] == math.inf


def test_flat_equity_gives_nan_ratios() -> None:
    m = compute_metrics([100.0, 100.0, 100.0], "1h")
    assert m["total_return"] == 0 and m["max_drawdown"] == 0
    assert all(math.isnan(m[k]) for k in ("sharpe", "sortino", "calmar"))


@pytest.mark.parametrize(
    ("equity", "timestamps", "message"),
    [
        ([100.0], None, "at least 2"),
        ([100.0, -1.0], None, "finite and positive"),
        ([100.0, float("nan")], None, "finite and positive"),
        ([1.0, 2.0], pd.DatetimeIndex(["2024-01-01", "2024-01-02"]), "timezone-naive"),
        ([1.0, 2.0], pd.DatetimeIndex(["2024-01-02", "2024-01-01"], tz="UTC"), "strictly increasing"),
        ([1.0, 2.0, 3.0], pd.DatetimeIndex(["2024-01-01", "2024-01-02"], tz="UTC"), "2 timestamps for 3"),
    ],
)
def test_bad_equity_raises(equity: list[float], timestamps: pd.DatetimeIndex | None, message: str) -> None:
    with pytest.raises(DataError, match=message):
        equity_series(equity, timestamps)


def test_polars_and_numpy_timestamps_are_utc() -> None:
    stamps = pl.Series(DAILY.to_list()).cast(pl.Datetime("us", "UTC"))
    from_polars = equity_series(pl.Series(HAND_EQUITY.to_numpy()), stamps)
    from_numpy = equity_series(HAND_EQUITY.to_numpy(), stamps.to_numpy())
    assert from_polars.index.equals(DAILY) and from_numpy.index.equals(DAILY)


def _quantstats(returns: pd.Series, periods: int) -> dict[str, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "sharpe": float(qs.stats.sharpe(returns, periods=periods)),
            "sortino": float(qs.stats.sortino(returns, periods=periods)),
            "annual_volatility": float(qs.stats.volatility(returns, periods=periods)),
            "annual_return": float(qs.stats.cagr(returns, periods=periods)),
            "max_drawdown": float(qs.stats.max_drawdown(returns)),
            "calmar": float(qs.stats.calmar(returns, periods=periods)),
            "psr": float(qs.stats.probabilistic_sharpe_ratio(returns, periods=periods)),
        }


@pytest.mark.parametrize(("timeframe", "seed"), [("1h", 1), ("4h", 2), ("1d", 3)])
def test_agrees_with_quantstats_on_gapless_returns(timeframe: str, seed: int) -> None:
    equity = noisy_equity(3_000, seed, drift=2e-4, vol=0.02)
    equity.index = pd.date_range("2021-01-01", periods=3_000, freq=timeframe.replace("d", "D"), tz="UTC")
    ours = compute_metrics(equity, timeframe)
    theirs = _quantstats(naive(simple_returns(equity)), int(bars_per_year(timeframe)))
    for key, value in theirs.items():
        assert ours[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def test_agrees_with_quantstats_on_real_btc(btc_close: pd.Series) -> None:
    ours = compute_metrics(btc_close, "1h")
    returns = naive(simple_returns(equity_series(btc_close)))
    theirs = _quantstats(returns, 8760)
    for key in ("sharpe", "sortino", "annual_volatility", "max_drawdown", "psr"):
        assert ours[key] == pytest.approx(theirs[key], rel=1e-9), key
    # The bundled series has 27 gaps: QuantStats counts years as returns / 8760, we use calendar time.
    total = btc_close.iloc[-1] / btc_close.iloc[0]
    elapsed_years = (btc_close.index[-1] - btc_close.index[0]) / pd.Timedelta(days=365)
    assert ours["annual_return"] == pytest.approx(total ** (1 / elapsed_years) - 1, rel=1e-12)
    assert theirs["annual_return"] == pytest.approx(total ** (8760 / len(returns)) - 1, rel=1e-12)
    assert ours["annual_return"] == pytest.approx(theirs["annual_return"], rel=5e-3)
    assert ours["annual_return"] == pytest.approx(cagr(total - 1, len(returns) / 8760), rel=5e-3)


def test_trade_metrics_agree_with_quantstats_on_trade_returns() -> None:
    trade_returns = np.random.default_rng(4).normal(0.002, 0.02, 300)
    series = pd.Series(trade_returns, index=pd.date_range("2022-01-01", periods=300, freq="D"))
    ours = trade_metrics(trade_returns)
    assert ours["win_rate"] == pytest.approx(qs.stats.win_rate(series))
    assert ours["profit_factor"] == pytest.approx(qs.stats.profit_factor(series))
    assert ours["avg_trade_return"] == pytest.approx(qs.stats.avg_return(series))


def test_series_helpers_agree_with_quantstats(btc_close: pd.Series) -> None:
    equity = equity_series(btc_close.iloc[-5_000:])
    returns = simple_returns(equity)
    ours = rolling_sharpe(returns, 720, "1h")
    theirs = qs.stats.rolling_sharpe(naive(returns), rolling_period=720, periods_per_year=8760)
    np.testing.assert_allclose(ours.to_numpy()[719:], theirs.to_numpy()[719:], rtol=1e-9)
    assert ours.iloc[:719].isna().all()
    drawdown = qs.stats.to_drawdown_series(naive(returns))
    np.testing.assert_allclose(drawdown_series(equity).to_numpy()[1:], drawdown.to_numpy(), atol=1e-12)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(-0.5, 0.5, allow_nan=False), min_size=3, max_size=60),
    st.floats(0.01, 1e6),
)
def test_metrics_are_scale_free_and_drawdown_bounded(returns: list[float], scale: float) -> None:
    equity = 100.0 * np.cumprod(np.concatenate([[1.0], 1.0 + np.array(returns)]))
    base, scaled = compute_metrics(equity, "1h"), compute_metrics(equity * scale, "1h")
    for key in ("total_return", "sharpe", "sortino", "max_drawdown", "max_drawdown_duration_bars"):
        # Scaling equity changes the last bits of each return; ratios of tiny deviations amplify that.
        assert base[key] == pytest.approx(scaled[key], rel=1e-6, abs=1e-12, nan_ok=True), key
    assert -1.0 <= base["max_drawdown"] <= 0.0
    assert base["max_drawdown"] <= min(0.0, min(returns)) + 1e-12
