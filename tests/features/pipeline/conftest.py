"""Shared data for the feature-pipeline tests: slices of the real bundled Binance data."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl
import pytest

from features.data.registry import load_dataset
from features.data.schema import TIMESTAMP, Dataset
from features.pipeline.external import FrameSource


def head(dataset: Dataset, rows: int, start: int = 0) -> Dataset:
    return Dataset({k: f.slice(start, rows) for k, f in dataset.series.items()}, dataset.name)


@pytest.fixture(scope="session")
def btc_eth() -> Dataset:
    """Real hourly BTC/USDT and ETH/USDT (Binance, 2017-2022)."""
    return load_dataset("binance_1h", symbols=["BTC/USDT", "ETH/USDT"]).dataset


def with_book(frame: pl.DataFrame, seed: int) -> pl.DataFrame:
    """Real bars plus synthetic top-of-book and 3-level depth columns; every 50th snapshot missing."""
    rng = np.random.default_rng(seed)
    n = frame.height
    close = frame["close"].to_numpy()
    half = close * rng.uniform(1e-5, 5e-4, n)
    missing = np.arange(n) % 50 == 7
    def col(values: np.ndarray) -> pl.Series:
        return pl.Series(np.where(missing, np.nan, values)).fill_nan(None)
    book = {"bid": col(close - half), "ask": col(close + half),
            "bid_size": col(rng.exponential(5.0, n)), "ask_size": col(rng.exponential(5.0, n))}
    for level in (1, 2, 3):
        book[f"bid_size_{level}"] = col(rng.exponential(10.0, n))
        book[f"ask_size_{level}"] = col(rng.exponential(10.0, n))
    return frame.with_columns(**book)


def news_source(dataset: Dataset, seed: int) -> FrameSource:
    """Scores published at random times (not on bar boundaries), market-wide and per coin."""
    rng = np.random.default_rng(seed)
    first = min(f[TIMESTAMP][0] for f in dataset.series.values())
    last = max(f[TIMESTAMP][-1] for f in dataset.series.values())
    hours = (last - first) / timedelta(hours=1)
    count = int(hours / 3)
    offsets = np.sort(rng.uniform(0, hours + 5, count))
    times = [first + timedelta(hours=float(h)) for h in offsets]
    symbols = [(None, "BTC", "ETH")[i] for i in rng.integers(0, 3, count)]
    data = pl.DataFrame({"published_at": times, "score": rng.normal(size=count), "symbol": symbols},
                        schema_overrides={"published_at": pl.Datetime("us", "UTC")})
    return FrameSource("news", data, max_age=timedelta(hours=12))


@pytest.fixture(scope="session")
def kitchen_sink(btc_eth: Dataset) -> tuple[Dataset, FrameSource]:
    """3000 real hourly bars of BTC and ETH, ETH with order-book columns, plus a news source: every feature
    group of the pipeline is active on it."""
    data = head(btc_eth, 3000)
    eth = data.key("ETH/USDT")
    data.series[eth] = with_book(data[eth], seed=3)
    return data, news_source(data, seed=4)
