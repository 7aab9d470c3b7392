"""Tests for features.data.resample: exact hand-computed bars, real Binance data, gaps, properties."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.data.registry import load_dataset
from features.data.resample import N_BARS, bars_per_bucket, resample, resample_dataset
from features.data.schema import OHLCV_COLUMNS, TIMESTAMP, TIMESTAMP_DTYPE, BarKey, DataError, Dataset

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def bars(rows: list[tuple[int, float, float, float, float, float]], step: timedelta) -> pl.DataFrame:
    """Bars from (index on the step grid from T0, open, high, low, close, volume)."""
    return pl.DataFrame(
        {
            TIMESTAMP: [T0 + i * step for i, *_ in rows],
            **{name: [row[k + 1] for row in rows] for k, name in enumerate(OHLCV_COLUMNS)},
        },
        schema_overrides={TIMESTAMP: TIMESTAMP_DTYPE},
    )


MINUTE = timedelta(minutes=1)
TEN_MINUTES = [
    (0, 100.0, 101.0, 99.5, 100.5, 1.0),
    (1, 100.5, 102.0, 100.0, 101.5, 2.0),
    (2, 101.5, 101.8, 98.0, 99.0, 3.0),
    (3, 99.0, 99.5, 98.5, 99.2, 4.0),
    (4, 99.2, 100.1, 99.1, 100.0, 5.0),
    (5, 100.0, 100.2, 97.0, 97.5, 6.0),
    (6, 97.5, 98.0, 96.5, 97.9, 7.0),
    (7, 97.9, 103.0, 97.8, 102.5, 8.0),
    (8, 102.5, 102.6, 101.0, 101.2, 9.0),
    (9, 101.2, 101.3, 100.4, 100.8, 10.0),
]


def test_one_minute_to_five_minutes_exact_values() -> None:
    out = resample(bars(TEN_MINUTES, MINUTE), "1m", "5m")
    expected = pl.DataFrame(
        {
            TIMESTAMP: [T0, T0 + 5 * MINUTE],
            "open": [100.0, 100.0],
            "high": [102.0, 103.0],
            "low": [98.0, 96.5],
            "close": [100.0, 100.8],
            "volume": [15.0, 40.0],
            N_BARS: [5, 5],
        },
        schema_overrides={TIMESTAMP: TIMESTAMP_DTYPE, N_BARS: pl.Int64},
    )
    assert out.equals(expected)


def test_extra_columns_take_last_value_unless_told_otherwise() -> None:
    frame = bars(TEN_MINUTES, MINUTE).with_columns(
        spread=pl.Series([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]),
        is_filled=pl.Series([False, False, True, False, False, False, False, False, False, False]),
    )
    default = resample(frame, "1m", "5m")
    assert default["spread"].to_list() == [0.5, 1.0]
    assert default["is_filled"].to_list() == [True, False]
    assert default.columns == [TIMESTAMP, *OHLCV_COLUMNS, "spread", "is_filled", N_BARS]
    averaged = resample(frame, "1m", "5m", aggregate={"spread": "max", "is_filled": "last"})
    assert averaged["spread"].to_list() == [0.5, 1.0]
    assert averaged["is_filled"].to_list() == [False, False]
    summed = resample(frame, "1m", "5m", aggregate={"spread": "sum"})
    assert summed["spread"].to_list() == pytest.approx([1.5, 4.0])


def test_unsorted_input_gives_the_same_bars() -> None:
    frame = bars(TEN_MINUTES, MINUTE)
    shuffled = frame.sample(fraction=1.0, shuffle=True, seed=3)
    assert resample(shuffled, "1m", "5m").equals(resample(frame, "1m", "5m"))


def test_gap_bucket_dropped_or_kept_with_its_bar_count() -> None:
    with_gap = [row for row in TEN_MINUTES if row[0] != 7]  # exchange outage at 00:07
    complete = resample(bars(with_gap, MINUTE), "1m", "5m")
    assert complete[TIMESTAMP].to_list() == [T0]
    kept = resample(bars(with_gap, MINUTE), "1m", "5m", complete_only=False)
    assert kept[N_BARS].to_list() == [5, 4]
    second = kept.row(1, named=True)
    assert (second["open"], second["high"], second["low"], second["close"], second["volume"]) == (
        100.0,
        102.6,
        96.5,
        100.8,
        32.0,
    )


def test_partial_first_and_last_buckets_follow_epoch_alignment() -> None:
    # minutes 3..11 fall in buckets 00:00 (3 bars), 00:05 (5 bars), 00:10 (2 bars)
    rows = [(i + 3, 1.0 + i, 2.0 + i, 0.5 + i, 1.5 + i, 1.0) for i in range(9)]
    kept = resample(bars(rows, MINUTE), "1m", "5m", complete_only=False)
    assert kept[TIMESTAMP].to_list() == [T0, T0 + 5 * MINUTE, T0 + 10 * MINUTE]
    assert kept[N_BARS].to_list() == [2, 5, 2]
    assert kept["open"].to_list() == [1.0, 3.0, 8.0]
    assert kept["close"].to_list() == [2.5, 7.5, 9.5]
    complete = resample(bars(rows, MINUTE), "1m", "5m")
    assert complete[TIMESTAMP].to_list() == [T0 + 5 * MINUTE]


@pytest.mark.parametrize(("source", "target"), [("5m", "7m"), ("1h", "30m"), ("4h", "6h"), ("1h", "90m")])
def test_target_must_be_whole_multiple_of_source(source: str, target: str) -> None:
    with pytest.raises(DataError, match=f"'{source}'.*'{target}'"):
        resample(bars(TEN_MINUTES, MINUTE), source, target)


def test_bars_per_bucket() -> None:
    assert bars_per_bucket("1m", "5m") == 5
    assert bars_per_bucket("15m", "4h") == 16
    assert bars_per_bucket("1h", "1d") == 24
    assert bars_per_bucket("1h", "1h") == 1


def test_bad_frames_are_named() -> None:
    frame = bars(TEN_MINUTES, MINUTE)
    with pytest.raises(DataError, match="volume"):
        resample(frame.drop("volume"), "1m", "5m")
    shifted = frame.with_columns(pl.col(TIMESTAMP) + timedelta(seconds=30))
    with pytest.raises(DataError, match=r"row 0.*grid"):
        resample(shifted, "1m", "5m")
    with pytest.raises(DataError, match="duplicate"):
        resample(pl.concat([frame, frame.head(1)]), "1m", "5m")
    with pytest.raises(DataError, match="open"):
        resample(frame, "1m", "5m", aggregate={"open": "last"})
    with pytest.raises(DataError, match="median"):
        resample(frame.with_columns(spread=pl.lit(1.0)), "1m", "5m", aggregate={"spread": "median"})  # type: ignore[dict-item]


def test_empty_frame_resamples_to_empty_frame() -> None:
    out = resample(bars(TEN_MINUTES, MINUTE).head(0), "1m", "5m")
    assert out.height == 0
    assert out.schema[TIMESTAMP] == TIMESTAMP_DTYPE
    assert out.columns == [TIMESTAMP, *OHLCV_COLUMNS, N_BARS]


def test_resample_dataset_renames_keys() -> None:
    key = BarKey("binance", "BTC/USDT", "1m")
    out = resample_dataset(Dataset({key: bars(TEN_MINUTES, MINUTE)}, "demo"), "5m")
    assert out.keys == [BarKey("binance", "BTC/USDT", "5m")]
    assert out["BTC/USDT"]["volume"].to_list() == [15.0, 40.0]


# --- real data ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def btc_spot() -> dict[str, pl.DataFrame]:
    """Bundled Binance spot BTC/USDT hourly and daily bars."""
    return {tf: load_dataset(f"binance_btc_{tf}").dataset["BTC/USDT"] for tf in ("1h", "1d")}


def test_hourly_to_daily_matches_exchange_daily_bars(btc_spot: dict[str, pl.DataFrame]) -> None:
    ours = resample(btc_spot["1h"], "1h", "1d")
    joined = ours.join(btc_spot["1d"], on=TIMESTAMP, suffix="_exchange")
    assert joined.height == ours.height > 1800
    for column in ("open", "high", "low", "close"):
        assert (joined[column] == joined[f"{column}_exchange"]).all(), column
    np.testing.assert_allclose(joined["volume"], joined["volume_exchange"], rtol=1e-9)
    assert (ours[TIMESTAMP].dt.hour() == 0).all()


def test_daily_bar_counts_match_independent_count(btc_spot: dict[str, pl.DataFrame]) -> None:
    hourly = btc_spot["1h"]
    per_day = Counter(ts.date() for ts in hourly[TIMESTAMP].to_list())
    kept = resample(hourly, "1h", "1d", complete_only=False)
    assert {ts.date(): n for ts, n in zip(kept[TIMESTAMP], kept[N_BARS], strict=True)} == per_day
    complete = resample(hourly, "1h", "1d")
    assert complete.height == sum(n == 24 for n in per_day.values())
    assert complete.height < kept.height  # the file has outage gaps and a partial first day


def test_hourly_to_four_hours_alignment(btc_spot: dict[str, pl.DataFrame]) -> None:
    hourly = btc_spot["1h"]
    four = resample(hourly, "1h", "4h")
    assert set(four[TIMESTAMP].dt.hour().unique().to_list()) == {0, 4, 8, 12, 16, 20}
    opens = four.join(hourly.select(TIMESTAMP, pl.col("open").alias("hour_open")), on=TIMESTAMP)
    assert opens.height == four.height
    assert (opens["open"] == opens["hour_open"]).all()
    via_four = resample(four, "4h", "1d").drop(N_BARS)
    direct = resample(hourly, "1h", "1d").drop(N_BARS)
    # a day with every hour has every 4h bar and vice versa, so chaining loses nothing
    assert via_four.drop("volume").equals(direct.drop("volume"))
    np.testing.assert_allclose(via_four["volume"], direct["volume"], rtol=1e-12)


# --- properties -----------------------------------------------------------------------------------


def random_minute_bars(seed: int, n_bars: int, first_minute: int, drop_fraction: float) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    minutes = np.arange(first_minute, first_minute + n_bars)
    minutes = minutes[rng.random(n_bars) >= drop_fraction]
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, len(minutes))))
    open_ = np.concatenate([[100.0], close[:-1]])[: len(close)]
    spread = rng.random(len(minutes))
    return pl.DataFrame(
        {
            TIMESTAMP: [T0 + int(m) * MINUTE for m in minutes],
            "open": open_,
            "high": np.maximum(open_, close) * (1.0 + spread / 100),
            "low": np.minimum(open_, close) * (1.0 - spread / 100),
            "close": close,
            # whole numbers so sums are exact in any order
            "volume": rng.integers(0, 1000, len(minutes)).astype(float),
            "spread": spread,
        },
        schema_overrides={TIMESTAMP: TIMESTAMP_DTYPE},
    )


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_bars=st.integers(0, 240),
    first_minute=st.integers(0, 60),
    drop_fraction=st.sampled_from([0.0, 0.01, 0.1, 0.5]),
    complete_only=st.booleans(),
)
def test_chained_resampling_equals_direct(
    seed: int, n_bars: int, first_minute: int, drop_fraction: float, complete_only: bool
) -> None:
    minute_bars = random_minute_bars(seed, n_bars, first_minute, drop_fraction)
    five = resample(minute_bars, "1m", "5m", complete_only=complete_only)
    chained = resample(five, "5m", "15m", complete_only=complete_only)
    direct = resample(minute_bars, "1m", "15m", complete_only=complete_only)
    assert chained.equals(direct)
    if complete_only:
        assert (direct[N_BARS] == 15).all()
    assert direct[N_BARS].sum() <= minute_bars.height
