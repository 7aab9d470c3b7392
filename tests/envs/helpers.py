"""Panels for environment tests: from hand-written bars, random paths, and the bundled real data."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

from envs.config import CostConfig, FeeSchedule
from features.data.registry import load_dataset
from features.data.schema import BarKey
from features.panel import FeaturePanel

Bar = tuple[float, float, float, float, float]  # open, high, low, close, volume
START = np.datetime64("2024-01-01T00:00", "us")
HOUR = np.timedelta64(3600, "s")


def bar_panel(bars: Mapping[str, Sequence[Bar]], timeframe: str = "1h") -> FeaturePanel:
    """A panel of hand-written bars keyed by 'exchange:SYMBOL'.

    Features are the close-to-close log return (0 on the first bar) and the
    bar index, so that observation windows can be checked by value.
    """
    keys = tuple(BarKey(name.split(":")[0], name.split(":")[1], timeframe) for name in bars)
    ohlcv = np.stack([np.asarray(rows, dtype=np.float64) for rows in bars.values()], axis=1)
    count = ohlcv.shape[0]
    close = ohlcv[:, :, 3]
    returns = np.zeros_like(close)
    returns[1:] = np.log(close[1:] / close[:-1])
    index = np.broadcast_to(np.arange(count, dtype=np.float64)[:, None], close.shape)
    features = np.stack([returns, index], axis=-1).astype(np.float32)
    stamps = START + np.arange(count) * HOUR
    return FeaturePanel(stamps, keys, ("log_return", "bar_index"), features, ohlcv)


def random_panel(
    rng: np.random.Generator, bars: int, instruments: Sequence[str] = ("binance:BTC/USDT",), volume: float = 1e6
) -> FeaturePanel:
    """A random walk with consistent OHLC (low <= open, close <= high) and gaps between bars."""
    columns: dict[str, list[Bar]] = {}
    for name in instruments:
        close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.02, bars)))
        open_ = np.concatenate([[100.0], close[:-1] * np.exp(rng.normal(0.0, 0.005, bars - 1))])
        high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, 0.01, bars)))
        low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, 0.01, bars)))
        vol = rng.uniform(0.5, 1.5, bars) * volume
        columns[name] = list(zip(open_, high, low, close, vol, strict=True))
    return bar_panel(columns)


def costs(
    taker: float = 0.001, maker: float = 0.0005, slippage_bps: float = 10.0, min_notional: float = 10.0,
    fees: dict[str, FeeSchedule] | None = None, impact_coef: float = 0.0,
) -> CostConfig:
    """Costs with no volatility-scaled slippage, so expectations are plain arithmetic."""
    return CostConfig(
        fees=fees or {}, default_fees=FeeSchedule(maker=maker, taker=taker), slippage_bps=slippage_bps,
        slippage_vol_mult=0.0, impact_coef=impact_coef, min_order_notional=min_notional,
    )


def real_panel(coins: Sequence[str] = ("BTC", "ETH"), last: int = 3000) -> FeaturePanel:
    """The bundled Binance 1h bars of ``coins`` on their common timestamps, last ``last`` bars.

    Features computed here: 1-bar and 24-bar log returns and the log range (high / low).
    """
    dataset = load_dataset("binance_1h", symbols=[f"binance:{c}/USDT" for c in coins]).dataset
    keys = [dataset.key(f"binance:{c}/USDT") for c in coins]
    frames = [dataset[key].select("timestamp", "open", "high", "low", "close", "volume") for key in keys]
    common = frames[0].select("timestamp")
    for frame in frames[1:]:
        common = common.join(frame.select("timestamp"), on="timestamp", how="inner")
    common = common.sort("timestamp").tail(last + 24)
    ohlcv = np.stack([common.join(f, on="timestamp", how="left").drop("timestamp").to_numpy() for f in frames], 1)
    close = ohlcv[:, :, 3]
    one = np.zeros_like(close)
    one[1:] = np.log(close[1:] / close[:-1])
    day = np.zeros_like(close)
    day[24:] = np.log(close[24:] / close[:-24])
    spread = np.log(ohlcv[:, :, 1] / ohlcv[:, :, 2])
    features = np.stack([one, day, spread], axis=-1)[24:].astype(np.float32)
    stamps = common["timestamp"].cast(pl.Datetime("us")).to_numpy()[24:]
    return FeaturePanel(stamps, tuple(keys), ("ret_1", "ret_24", "log_range"), features, ohlcv[24:])
