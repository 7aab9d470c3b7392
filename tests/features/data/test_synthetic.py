"""Tests for features.data.synthetic: statistics within standard-error tolerances, valid bars, seeds."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.data.schema import (
    OHLCV_COLUMNS,
    TIMESTAMP,
    TIMESTAMP_DTYPE,
    BarKey,
    DataError,
    parse_timeframe,
)
from features.data.synthetic import (
    DEFAULT_START,
    GeometricBrownianMotion,
    Heston,
    MertonJumpDiffusion,
    OrnsteinUhlenbeck,
    PriceProcess,
    VolumeModel,
    synthetic_dataset,
)

DAY_YEARS = 1 / 365
HOUR_YEARS = 1 / (365 * 24)


def log_returns(frame: pl.DataFrame) -> np.ndarray:
    return np.log(frame["close"].to_numpy() / frame["open"].to_numpy())


def excess_kurtosis(values: np.ndarray) -> float:
    centred = values - values.mean()
    return float(np.mean(centred**4) / np.mean(centred**2) ** 2 - 3)


def autocorrelation(values: np.ndarray, lag: int) -> float:
    centred = values - values.mean()
    return float(np.dot(centred[:-lag], centred[lag:]) / np.dot(centred, centred))


# --- GBM ------------------------------------------------------------------------------------------


def test_gbm_drift_and_volatility_estimates_daily() -> None:
    drift, volatility, years = 0.2, 0.3, 400
    gbm = GeometricBrownianMotion(drift=drift, volatility=volatility)
    returns = log_returns(gbm.simulate(365 * years, "1d", seed=11, substeps=2))
    vol_hat = returns.std(ddof=1) / math.sqrt(DAY_YEARS)
    drift_hat = returns.mean() / DAY_YEARS + vol_hat**2 / 2
    assert abs(vol_hat - volatility) < 4 * volatility / math.sqrt(2 * len(returns))
    assert abs(drift_hat - drift) < 4 * volatility / math.sqrt(years)  # drift s.e. = sigma / sqrt(T)


@pytest.mark.parametrize(("timeframe", "bar_years"), [("1h", HOUR_YEARS), ("4h", 4 * HOUR_YEARS)])
def test_gbm_volatility_is_annualised_by_bar_length(timeframe: str, bar_years: float) -> None:
    gbm = GeometricBrownianMotion(drift=0.0, volatility=0.8)
    returns = log_returns(gbm.simulate(30_000, timeframe, seed=5, substeps=4))
    vol_hat = returns.std(ddof=1) / math.sqrt(bar_years)
    assert abs(vol_hat - 0.8) < 4 * 0.8 / math.sqrt(2 * len(returns))


def test_gbm_returns_have_no_excess_kurtosis_or_volatility_clustering() -> None:
    returns = log_returns(GeometricBrownianMotion().simulate(20_000, "1h", seed=2, substeps=2))
    assert abs(excess_kurtosis(returns)) < 4 * math.sqrt(24 / len(returns))
    assert abs(autocorrelation(returns**2, 1)) < 4 / math.sqrt(len(returns))


# --- Ornstein-Uhlenbeck ---------------------------------------------------------------------------


def test_ou_ar1_coefficient_matches_mean_reversion() -> None:
    theta, mean_price = 20.0, 50.0
    ou = OrnsteinUhlenbeck(mean_reversion=theta, mean_price=mean_price, volatility=0.5, initial_price=mean_price)
    deviation = np.log(ou.simulate(5_000, "1d", seed=3, substeps=4)["close"].to_numpy() / mean_price)
    phi_hat = np.dot(deviation[:-1], deviation[1:]) / np.dot(deviation[:-1], deviation[:-1])
    phi = math.exp(-theta * DAY_YEARS)
    assert abs(phi_hat - phi) < 4 * math.sqrt((1 - phi**2) / len(deviation))


def test_ou_returns_to_mean_from_distant_start() -> None:
    theta, volatility, mean_price, start_deviation = 5.0, 0.3, 20.0, 2.0
    ou = OrnsteinUhlenbeck(
        mean_reversion=theta,
        mean_price=mean_price,
        volatility=volatility,
        initial_price=mean_price * math.exp(start_deviation),
    )
    closes = ou.simulate(365 * 24, "1h", seed=8)["close"].to_numpy()
    for years in (0.05, 0.1, 0.25, 0.5, 1.0):
        bar = round(years * 365 * 24) - 1  # close of this bar is at time `years`
        expected = start_deviation * math.exp(-theta * years)
        spread = volatility * math.sqrt((1 - math.exp(-2 * theta * years)) / (2 * theta))
        assert abs(math.log(closes[bar] / mean_price) - expected) < 4 * spread, years
    assert closes[0] > closes[-1]  # came down from e^2 times the mean


# --- Heston ---------------------------------------------------------------------------------------

HESTON = Heston(drift=0.0, long_run_variance=0.36, mean_reversion=4.0, vol_of_vol=0.8, correlation=-0.5)
HESTON_YEARS = 10


@pytest.fixture(scope="module")
def heston_bars() -> pl.DataFrame:
    return HESTON.simulate(365 * 24 * HESTON_YEARS, "1h", seed=21, substeps=4, include_latent=True)


def test_heston_variance_stays_positive(heston_bars: pl.DataFrame) -> None:
    assert heston_bars["variance"].to_numpy().min() > 0
    # Feller condition 2 kappa theta > xi^2 broken: the exact CIR step still never goes negative
    no_feller = Heston(long_run_variance=0.04, mean_reversion=1.0, vol_of_vol=1.5, initial_variance=0.01)
    variance = no_feller.simulate(2_000, "1h", seed=4, include_latent=True)["variance"].to_numpy()
    assert np.isfinite(variance).all()
    assert variance.min() >= 0


def test_heston_variance_mean_follows_cir_expectation_across_seeds() -> None:
    heston = Heston(long_run_variance=0.36, mean_reversion=4.0, vol_of_vol=0.8, initial_variance=0.1)
    years = 30 / 365
    ends = np.array(
        [heston.simulate(30, "1d", seed=seed, substeps=2, include_latent=True)["variance"][-1] for seed in range(400)]
    )
    expected = 0.36 + (0.1 - 0.36) * math.exp(-4.0 * years)
    assert abs(ends.mean() - expected) < 4 * ends.std(ddof=1) / math.sqrt(len(ends))


def test_heston_volatility_clusters(heston_bars: pl.DataFrame) -> None:
    squared = log_returns(heston_bars) ** 2
    noise_level = 4 / math.sqrt(len(squared))
    assert autocorrelation(squared, 1) > noise_level
    assert autocorrelation(squared, 24) > noise_level
    assert excess_kurtosis(log_returns(heston_bars)) > 4 * math.sqrt(24 / len(squared))


def test_heston_realised_volatility_averages_long_run_level(heston_bars: pl.DataFrame) -> None:
    h = HESTON
    # time-average of a CIR variance over T years has s.e. ~ vol_of_vol * sqrt(theta) / (kappa sqrt(T))
    variance_se = h.vol_of_vol * math.sqrt(h.long_run_variance) / (h.mean_reversion * math.sqrt(HESTON_YEARS))
    realised = float(np.mean(log_returns(heston_bars) ** 2) / HOUR_YEARS)
    assert abs(realised - h.long_run_variance) < 4 * variance_se
    assert abs(math.sqrt(realised) - math.sqrt(h.long_run_variance)) < 0.1
    assert abs(heston_bars["variance"].to_numpy().mean() - h.long_run_variance) < 4 * variance_se


def test_heston_negative_correlation_links_returns_and_variance(heston_bars: pl.DataFrame) -> None:
    variance_change = np.diff(np.concatenate([[HESTON.long_run_variance], heston_bars["variance"].to_numpy()]))
    assert np.corrcoef(log_returns(heston_bars), variance_change)[0, 1] < -0.3


# --- Merton ---------------------------------------------------------------------------------------


def test_merton_jumps_show_in_kurtosis_and_large_move_count() -> None:
    intensity, years = 20.0, 20
    merton = MertonJumpDiffusion(volatility=0.3, jump_intensity=intensity, jump_mean=-0.15, jump_std=0.02)
    returns = log_returns(merton.simulate(365 * years, "1d", seed=9, substeps=4))
    assert excess_kurtosis(returns) > 3
    # daily diffusion s.d. is 0.3/sqrt(365) = 0.016, so |r| > 0.075 (4.8 s.d.) is almost surely a jump
    large = returns[np.abs(returns) > 0.075]
    expected = len(returns) * (1 - math.exp(-intensity * DAY_YEARS))  # bars with at least one jump
    assert abs(len(large) - expected) < 4 * math.sqrt(expected)
    assert abs(len(large) - intensity * years) < 4 * math.sqrt(intensity * years)
    assert abs(np.median(large) + 0.15) < 0.01


def test_merton_without_jumps_is_gbm() -> None:
    merton = MertonJumpDiffusion(drift=0.1, volatility=0.4, jump_intensity=0.0)
    gbm = GeometricBrownianMotion(drift=0.1, volatility=0.4)
    # no jumps: same shocks, same compensator-free drift; Poisson draws of zero leave the paths equal
    np.testing.assert_allclose(
        merton.simulate(500, "1h", seed=1)["close"], gbm.simulate(500, "1h", seed=1)["close"], rtol=1e-12
    )


# --- all processes --------------------------------------------------------------------------------

PROCESSES: list[PriceProcess] = [
    GeometricBrownianMotion(),
    OrnsteinUhlenbeck(initial_price=300.0),
    HESTON,
    MertonJumpDiffusion(),
]
prices = st.floats(1e-3, 1e5)
process_strategy = st.one_of(
    st.builds(
        GeometricBrownianMotion,
        drift=st.floats(-2, 2),
        volatility=st.floats(0.01, 3),
        initial_price=prices,
    ),
    st.builds(
        OrnsteinUhlenbeck,
        mean_reversion=st.floats(0.1, 200),
        mean_price=prices,
        volatility=st.floats(0.01, 3),
        initial_price=prices,
    ),
    st.builds(
        Heston,
        drift=st.floats(-2, 2),
        long_run_variance=st.floats(0.001, 4),
        mean_reversion=st.floats(0.1, 20),
        vol_of_vol=st.floats(0.05, 3),
        correlation=st.floats(-1, 1),
        initial_price=prices,
    ),
    st.builds(
        MertonJumpDiffusion,
        drift=st.floats(-2, 2),
        volatility=st.floats(0.01, 3),
        jump_intensity=st.floats(0, 500),
        jump_mean=st.floats(-0.5, 0.5),
        jump_std=st.floats(0, 0.5),
        initial_price=prices,
    ),
)


def assert_valid_bars(frame: pl.DataFrame, n_bars: int, bar: timedelta, start: datetime) -> None:
    assert frame.columns[:6] == [TIMESTAMP, *OHLCV_COLUMNS]
    assert frame.schema[TIMESTAMP] == TIMESTAMP_DTYPE
    assert all(frame.schema[c] == pl.Float64 for c in OHLCV_COLUMNS)
    assert frame.height == n_bars
    assert frame[TIMESTAMP][0] == start
    assert (frame[TIMESTAMP].diff().drop_nulls() == bar).all()
    o, h, low, c, v = (frame[name].to_numpy() for name in OHLCV_COLUMNS)
    assert np.isfinite(np.stack([o, h, low, c, v])).all()
    assert (low > 0).all()
    assert (h >= np.maximum(o, c)).all()
    assert (low <= np.minimum(o, c)).all()
    assert (v > 0).all()
    assert (o[1:] == c[:-1]).all()  # open is the previous close, exactly


@settings(max_examples=80, deadline=None)
@given(
    process=process_strategy,
    seed=st.integers(0, 2**63),
    n_bars=st.integers(1, 150),
    timeframe=st.sampled_from(["1m", "5m", "1h", "4h", "1d"]),
    substeps=st.integers(1, 8),
)
def test_bars_are_valid_ohlcv(process: PriceProcess, seed: int, n_bars: int, timeframe: str, substeps: int) -> None:
    start = datetime(2021, 6, 1, 12, tzinfo=UTC)
    frame = process.simulate(n_bars, timeframe, seed=seed, start=start, substeps=substeps)
    assert_valid_bars(frame, n_bars, parse_timeframe(timeframe), start)
    assert frame["open"][0] == pytest.approx(process.initial_price, rel=1e-12)


@pytest.mark.parametrize("process", PROCESSES, ids=lambda p: type(p).__name__)
def test_same_seed_same_frame_different_seed_different_frame(process: PriceProcess) -> None:
    first = process.simulate(300, "15m", seed=123)
    assert first.equals(process.simulate(300, "15m", seed=123))
    other = process.simulate(300, "15m", seed=124)
    assert not np.allclose(first["close"], other["close"])
    assert not np.allclose(first["volume"], other["volume"])
    assert first[TIMESTAMP][0] == DEFAULT_START
    assert "variance" not in first.columns  # latent state only on request


def test_volume_mean_and_link_to_absolute_returns() -> None:
    flat = GeometricBrownianMotion().simulate(20_000, "1h", seed=6, volume=VolumeModel(return_sensitivity=0.0))
    dispersion_sd = math.sqrt(math.exp(0.5**2) - 1)  # coefficient of variation of the lognormal
    assert abs(flat["volume"].to_numpy().mean() / (1_000 / 24) - 1) < 4 * dispersion_sd / math.sqrt(flat.height)
    linked = GeometricBrownianMotion().simulate(20_000, "1h", seed=6, volume=VolumeModel(return_sensitivity=1.0))
    abs_returns = np.abs(log_returns(linked))
    assert np.corrcoef(np.log(linked["volume"].to_numpy()), abs_returns)[0, 1] > 0.3
    assert abs(np.corrcoef(np.log(flat["volume"].to_numpy()), np.abs(log_returns(flat)))[0, 1]) < 0.03


def test_bad_parameters_raise() -> None:
    with pytest.raises(DataError, match="volatility"):
        GeometricBrownianMotion(volatility=0.0)
    with pytest.raises(DataError, match="correlation"):
        Heston(correlation=1.5)
    with pytest.raises(DataError, match="jump_intensity"):
        MertonJumpDiffusion(jump_intensity=-1.0)
    with pytest.raises(DataError, match="n_bars"):
        GeometricBrownianMotion().simulate(0)
    with pytest.raises(DataError, match="timezone"):
        GeometricBrownianMotion().simulate(10, start=datetime(2020, 1, 1))
    with pytest.raises(DataError, match="timeframe"):
        GeometricBrownianMotion().simulate(10, "7x")


# --- datasets -------------------------------------------------------------------------------------


def test_independent_dataset_series_match_simulate_with_child_seeds() -> None:
    gbm = GeometricBrownianMotion()
    dataset = synthetic_dataset(gbm, ["AAA/USD", "BBB/USD"], 200, "1h", seed=42)
    assert dataset.keys == [BarKey("synthetic", "AAA/USD", "1h"), BarKey("synthetic", "BBB/USD", "1h")]
    children = np.random.SeedSequence(42).spawn(3)
    for key, child in zip(dataset.keys, children, strict=False):
        assert dataset[key].equals(gbm.simulate(200, "1h", seed=child))
    assert not dataset["AAA/USD"]["close"].equals(dataset["BBB/USD"]["close"])


def test_correlated_dataset_has_requested_correlation() -> None:
    matrix = np.array([[1.0, 0.7, -0.3], [0.7, 1.0, 0.0], [-0.3, 0.0, 1.0]])
    processes = {"A": GeometricBrownianMotion(), "B": GeometricBrownianMotion(volatility=0.3), "C": HESTON}
    dataset = synthetic_dataset(processes, ["A", "B", "C"], 5_000, "1h", seed=1, correlation=matrix)
    returns = np.stack([log_returns(dataset[s]) for s in ("A", "B")])
    se = (1 - 0.7**2) / math.sqrt(returns.shape[1])
    assert abs(np.corrcoef(returns)[0, 1] - 0.7) < 4 * se
    # Heston's own variance noise dilutes the requested -0.3 toward zero but keeps its sign
    assert np.corrcoef(log_returns(dataset["A"]), log_returns(dataset["C"]))[0, 1] < -0.1
    for key in dataset:
        assert_valid_bars(dataset[key], 5_000, timedelta(hours=1), DEFAULT_START)
    again = synthetic_dataset(processes, ["A", "B", "C"], 5_000, "1h", seed=1, correlation=matrix)
    assert all(again[key].equals(dataset[key]) for key in dataset)


def test_bad_dataset_requests_raise() -> None:
    gbm = GeometricBrownianMotion()
    with pytest.raises(DataError, match="distinct"):
        synthetic_dataset(gbm, ["A", "A"], 10)
    with pytest.raises(DataError, match="distinct"):
        synthetic_dataset(gbm, ["btc/usd", "BTC/USD"], 10)
    with pytest.raises(DataError, match="no process"):
        synthetic_dataset({"A": gbm}, ["A", "B"], 10)
    with pytest.raises(DataError, match="shape"):
        synthetic_dataset(gbm, ["A", "B"], 10, correlation=np.eye(3))
    with pytest.raises(DataError, match="positive definite"):
        synthetic_dataset(gbm, ["A", "B"], 10, correlation=np.array([[1.0, 1.2], [1.2, 1.0]]))
    with pytest.raises(DataError, match="symmetric"):
        synthetic_dataset(gbm, ["A", "B"], 10, correlation=np.array([[1.0, 0.2], [0.1, 1.0]]))
