"""Cross-asset features: the reference's returns, aligned as of each bar's close."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from features.data.schema import Dataset
from features.pipeline.config import FeatureConfig
from features.pipeline.cross_asset import find_reference
from features.pipeline.pipeline import FeaturePipeline
from tests.features.pipeline.conftest import head

ONLY_XA = FeatureConfig.from_dict({**{g: {"enabled": False} for g in
                                      ("indicators", "volume", "returns", "patterns", "time", "microstructure")},
                                   "cross_asset": {"references": ["BTC"], "horizons": [1, 24], "corr_window": 48}})


def log_returns(close: np.ndarray, horizon: int) -> np.ndarray:
    out = np.full(close.shape, np.nan)
    out[horizon:] = np.log(close[horizon:] / close[:-horizon])
    return out


def test_eth_sees_btc_returns_of_the_same_bar(btc_eth: Dataset) -> None:
    data = head(btc_eth, 600)
    frames = FeaturePipeline(ONLY_XA).transform(data, normalise=False)
    eth = frames[data.key("ETH/USDT")]
    btc_close, eth_close = data["BTC/USDT"]["close"].to_numpy(), data["ETH/USDT"]["close"].to_numpy()
    for h in (1, 24):
        np.testing.assert_allclose(eth[f"xa_btc_logret_{h}"].to_numpy(), log_returns(btc_close, h), rtol=1e-12)
        np.testing.assert_allclose(eth[f"xa_btc_rel_{h}"].to_numpy(),
                                   log_returns(eth_close, h) - log_returns(btc_close, h), rtol=1e-9, atol=1e-15)
    a, b = log_returns(eth_close, 1)[1:49], log_returns(btc_close, 1)[1:49]
    assert eth["xa_btc_corr_48"][48] == pytest.approx(np.corrcoef(a, b)[0, 1], rel=1e-9)
    assert eth["xa_btc_corr_48"][:48].null_count() == 48
    btc = frames[data.key("BTC/USDT")]  # BTC is its own reference: relative return 0, correlation 1
    assert btc["xa_btc_rel_1"].drop_nulls().abs().max() == 0.0
    assert btc["xa_btc_corr_48"].drop_nulls().min() == pytest.approx(1.0)


def test_a_missing_reference_bar_repeats_the_last_known_one(btc_eth: Dataset) -> None:
    data = head(btc_eth, 300)
    btc = data.key("BTC/USDT")
    gap = data[btc]["timestamp"][200]
    data.series[btc] = data[btc].filter(pl.col("timestamp") != gap)
    eth = FeaturePipeline(ONLY_XA).transform(data, normalise=False)[data.key("ETH/USDT")]
    row = eth.filter(pl.col("timestamp") == gap)
    previous = eth.filter(pl.col("timestamp") == data[btc]["timestamp"][199])
    assert row["xa_btc_logret_1"][0] == previous["xa_btc_logret_1"][0]  # stale, never the next bar's value


def test_without_the_reference_the_group_is_left_out(btc_eth: Dataset) -> None:
    eth_only = head(Dataset({btc_eth.key("ETH/USDT"): btc_eth["ETH/USDT"]}), 300)
    frame = FeaturePipeline(ONLY_XA).transform(eth_only)[eth_only.keys[0]]
    assert not [c for c in frame.columns if c.startswith("xa_")]


def test_reference_lookup_prefers_the_same_exchange(btc_eth: Dataset) -> None:
    from features.data.schema import BarKey

    keys = [BarKey("bitstamp", "BTC/USD", "1h"), BarKey("binance", "BTC/USDT", "1h"),
            BarKey("binance", "BTC/USDT", "1d")]
    assert find_reference("BTC", BarKey("binance", "ETH/USDT", "1h"), keys) == keys[1]
    assert find_reference("BTC", BarKey("bitstamp", "ETH/USD", "1h"), keys) == keys[0]
    assert find_reference("bitstamp:BTC/USD", BarKey("binance", "ETH/USDT", "1h"), keys) == keys[0]
    assert find_reference("DOGE", BarKey("binance", "ETH/USDT", "1h"), keys) is None
