"""A tiny long/flat moving-average backtest producing an equity curve and a ledger, for evaluation tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import polars as pl


@dataclass
class ToyBacktest:
    equity: pd.Series
    benchmark: pd.Series
    ledger: pl.DataFrame


def sma_backtest(
    bars: pl.DataFrame, window: int = 48, fee: float = 0.001, slippage_bps: float = 0.0
) -> ToyBacktest:
    """All-in long while close > SMA(window), flat otherwise; trades and equity at the bar close."""
    close = bars["close"].to_numpy()
    stamps = bars["timestamp"]
    sma = pd.Series(close).rolling(window).mean().to_numpy()
    slip = slippage_bps / 10_000
    cash, units, equity, rows = 10_000.0, 0.0, [], []
    for i, price in enumerate(close):
        if sma[i] == sma[i] and close[i] > sma[i] and units == 0:
            fill = price * (1 + slip)
            units = cash / (fill * (1 + fee))
            cost = units * fill * fee
            cash -= units * fill + cost
            rows.append((stamps[i], i, "BTC/USDT", "buy", units, fill, cost, units * price * slip, "filled"))
        elif units > 0 and close[i] <= sma[i]:
            fill = price * (1 - slip)
            cost = units * fill * fee
            cash += units * fill - cost
            rows.append((stamps[i], i, "BTC/USDT", "sell", units, fill, cost, units * price * slip, "filled"))
            units = 0.0
        equity.append(cash + units * price)
    index = pd.DatetimeIndex(stamps.to_pandas())
    schema = ["timestamp", "bar_index", "instrument", "side", "qty", "price", "fee", "slippage", "status"]
    ledger = pl.DataFrame(rows, schema=schema, orient="row")
    return ToyBacktest(
        pd.Series(equity, index=index), pd.Series(10_000.0 * close / close[0], index=index), ledger
    )


def hourly_index(n: int, start: str = "2024-01-01") -> pd.DatetimeIndex:
    return pd.date_range(start, periods=n, freq="h", tz="UTC")


def noisy_equity(n: int, seed: int, drift: float = 1e-4, vol: float = 0.01) -> pd.Series:
    returns = np.random.default_rng(seed).normal(drift, vol, n - 1)
    return pd.Series(1_000.0 * np.concatenate([[1.0], np.cumprod(1 + returns)]), index=hourly_index(n))
