"""Every indicator TA-Lib also computes agrees with it on the real BTC and ETH hourly data.

Floating-point indicators agree to 1e-9 relative after warm-up and start on the same bar
(TA-Lib's first non-NaN output is our first non-null one); candlestick patterns fire on
exactly the same bars with the same sign and strength (TA-Lib's +-100/+-80 are our +-1/+-0.8).
TA-Lib (PyPI ``ta-lib``) is a test dependency only.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl
import pytest

from features.data.schema import BarKey, Dataset
from features.pipeline.config import ALL_CANDLES, FeatureConfig
from features.pipeline.pipeline import FeaturePipeline

talib = pytest.importorskip("talib")
talib_abstract = pytest.importorskip("talib.abstract")

CONFIG = FeatureConfig.from_dict({
    "indicators": {"rsi": [14, 7], "ema": [20, 50], "sma": [20], "macd": [{}, {"fast": 5, "slow": 35, "signal": 5}],
                   "bollinger": [{}, {"period": 10, "stdev": 1.5}], "atr": [14]},
    "volume": {"obv": True, "roc": [10]},
    "returns": {"enabled": False}, "time": {"enabled": False}, "cross_asset": {"enabled": False},
    "patterns": {"candles": ALL_CANDLES, "pivots": [], "breakout": [], "hhll": []},
})
Arrays = dict[str, np.ndarray]


def references(a: Arrays) -> dict[str, np.ndarray]:
    h, low, c, v = a["high"], a["low"], a["close"], a["volume"]
    out = {"rsi_14": talib.RSI(c, 14), "rsi_7": talib.RSI(c, 7), "ema_20": talib.EMA(c, 20),
           "ema_50": talib.EMA(c, 50), "sma_20": talib.SMA(c, 20), "atr_14": talib.ATR(h, low, c, 14),
           "obv": talib.OBV(c, v), "volume_roc_10": talib.ROC(v, 10)}
    for (fast, slow, signal) in ((12, 26, 9), (5, 35, 5)):
        suffix = f"{fast}_{slow}_{signal}"
        line, sig, hist = talib.MACD(c, fast, slow, signal)
        out |= {f"macd_{suffix}": line, f"macd_signal_{suffix}": sig, f"macd_hist_{suffix}": hist}
    for period, dev, suffix in ((20, 2.0, "20_2"), (10, 1.5, "10_1.5")):
        upper, middle, lower = talib.BBANDS(c, period, dev, dev)
        out |= {f"bb_upper_{suffix}": upper, f"bb_middle_{suffix}": middle, f"bb_lower_{suffix}": lower}
    return out


CANDLES: dict[str, Callable[..., np.ndarray]] = {
    "doji": talib.CDLDOJI, "hammer": talib.CDLHAMMER, "shooting_star": talib.CDLSHOOTINGSTAR,
    "engulfing": talib.CDLENGULFING, "harami": talib.CDLHARAMI, "morning_star": talib.CDLMORNINGSTAR,
    "evening_star": talib.CDLEVENINGSTAR, "three_white_soldiers": talib.CDL3WHITESOLDIERS,
    "three_black_crows": talib.CDL3BLACKCROWS,
}


@pytest.fixture(scope="module")
def computed(btc_eth: Dataset) -> dict[BarKey, tuple[Arrays, pl.DataFrame]]:
    raw = FeaturePipeline(CONFIG).transform(btc_eth, normalise=False)
    return {key: ({c: btc_eth[key][c].to_numpy() for c in ("open", "high", "low", "close", "volume")}, raw[key])
            for key in btc_eth.keys}


@pytest.mark.parametrize("symbol", ["BTC/USDT", "ETH/USDT"])
def test_indicators_match_talib(computed: dict[BarKey, tuple[Arrays, pl.DataFrame]], symbol: str) -> None:
    arrays, frame = next(v for k, v in computed.items() if k.symbol == symbol)
    refs = references(arrays)
    assert len(refs) == 20
    for name, expected in refs.items():
        ours = frame[name].to_numpy()  # nulls become NaN
        first = int(np.argmax(~np.isnan(expected)))
        assert int(np.argmax(~np.isnan(ours))) == first, name
        assert np.isnan(ours[:first]).all(), name
        np.testing.assert_allclose(ours[first:], expected[first:], rtol=1e-9, atol=1e-9 * np.nanmax(np.abs(expected)),
                                   err_msg=name)


@pytest.mark.parametrize("symbol", ["BTC/USDT", "ETH/USDT"])
@pytest.mark.parametrize("pattern", list(CANDLES))
def test_candles_fire_on_the_same_bars_as_talib(computed: dict[BarKey, tuple[Arrays, pl.DataFrame]], symbol: str,
                                                pattern: str) -> None:
    arrays, frame = next(v for k, v in computed.items() if k.symbol == symbol)
    expected = CANDLES[pattern](arrays["open"], arrays["high"], arrays["low"], arrays["close"]).astype(float)
    ours = frame[f"cdl_{pattern}"].to_numpy()
    warmup = int(np.argmax(~np.isnan(ours)))
    assert warmup == talib_abstract.Function(CANDLES[pattern].__name__).lookback  # null where TA-Lib has none
    assert (expected != 0).sum() > 0  # the pattern occurs in the real data
    np.testing.assert_array_equal(np.round(ours[warmup:] * 100), expected[warmup:], err_msg=pattern)
