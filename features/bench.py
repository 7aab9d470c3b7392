"""Benchmark: our feature pipeline against TA-Lib on the six bundled 1h coins (``python -m features.bench``).

Three timings, medians of interleaved runs in one process (wall clock; CPU time summed over threads):

* TA-Lib (the speed anchor): RSI, MACD (3 outputs), EMA, SMA, Bollinger (3), ATR, OBV, volume ROC
  and four candlestick patterns (doji, hammer, engulfing, shooting star) for every coin;
* our pipeline computing exactly those outputs;
* our full default feature set (every group), raw and normalised.

TA-Lib is a test/benchmark dependency only (PyPI ``ta-lib``); without it the anchor row is skipped.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import polars as pl

from features.data.bench import machine
from features.data.registry import load_dataset
from features.data.schema import Dataset
from features.pipeline.config import FeatureConfig
from features.pipeline.pipeline import ENGINE, FeaturePipeline

ANCHOR_COLUMNS = ("rsi_14", "macd_12_26_9", "macd_signal_12_26_9", "macd_hist_12_26_9", "ema_20", "sma_20",
                  "bb_upper_20_2", "bb_middle_20_2", "bb_lower_20_2", "atr_14", "obv", "volume_roc_10",
                  "cdl_doji", "cdl_hammer", "cdl_engulfing", "cdl_shooting_star")
ANCHOR_CONFIG = {
    "indicators": {"rsi": [14], "ema": [20], "sma": [20], "macd": [{}], "bollinger": [{}], "atr": [14]},
    "volume": {"obv": True, "roc": [10]},
    "returns": {"enabled": False},
    "patterns": {"candles": ["doji", "hammer", "engulfing", "shooting_star"], "pivots": [], "breakout": [],
                 "hhll": []},
    "time": {"enabled": False}, "microstructure": {"enabled": False}, "cross_asset": {"enabled": False},
    "normalisation": {"method": "none", "relative_prices": False},
}


def talib_anchor(dataset: Dataset) -> Callable[[], int]:
    import talib  # a benchmark/test dependency only

    arrays = [{c: dataset[k][c].to_numpy() for c in ("open", "high", "low", "close", "volume")} for k in dataset]

    def run() -> int:
        outputs = 0
        for a in arrays:
            o, h, low, c, v = a["open"], a["high"], a["low"], a["close"], a["volume"]
            results = [talib.RSI(c, 14), *talib.MACD(c, 12, 26, 9), talib.EMA(c, 20), talib.SMA(c, 20),
                       *talib.BBANDS(c, 20, 2.0, 2.0), talib.ATR(h, low, c, 14), talib.OBV(c, v), talib.ROC(v, 10),
                       talib.CDLDOJI(o, h, low, c), talib.CDLHAMMER(o, h, low, c),
                       talib.CDLENGULFING(o, h, low, c), talib.CDLSHOOTINGSTAR(o, h, low, c)]
            outputs += len(results)
        return outputs

    return run


def ours_anchor(dataset: Dataset) -> Callable[[], int]:
    pipeline = FeaturePipeline(FeatureConfig.from_dict(ANCHOR_CONFIG))

    def run() -> int:
        plans = pipeline.plans(dataset, normalise=False)
        frames = pl.collect_all([p.frame.select(ANCHOR_COLUMNS) for p in plans], engine=ENGINE)
        return sum(f.width for f in frames)

    return run


def ours_full(dataset: Dataset, normalise: bool) -> Callable[[], int]:
    pipeline = FeaturePipeline()

    def run() -> int:
        frames = pipeline.transform(dataset, normalise=normalise)
        return sum(f.width - 7 for f in frames.values())  # minus timestamp, OHLCV, warm

    return run


@dataclass
class Timing:
    name: str
    run: Callable[[], int]
    outputs: int = 0
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def measure(self) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        self.outputs = self.run()
        self.wall.append((time.perf_counter() - wall) * 1000)
        self.cpu.append((time.process_time() - cpu) * 1000)


def main(repeats: int = 15) -> None:
    dataset = load_dataset("binance_1h").dataset
    bars = sum(f.height for f in dataset.series.values())
    print(f"machine: {machine()}")
    print(f"data: binance_1h, {len(dataset)} coins, {bars:,} bars; {repeats} interleaved runs (first discarded)\n")
    timings: list[Timing] = []
    try:
        timings.append(Timing("TA-Lib anchor set", talib_anchor(dataset)))
    except ImportError:
        print("TA-Lib not installed (pip install ta-lib): anchor row skipped")
    timings += [Timing("ours, same outputs", ours_anchor(dataset)),
                Timing("ours, full default set, raw", ours_full(dataset, False)),
                Timing("ours, full default set, normalised", ours_full(dataset, True))]
    for _ in range(repeats + 1):  # interleaved, so a busy moment of the machine hits every row alike
        for timing in timings:
            timing.measure()
    anchor = statistics.median(timings[0].wall[1:]) if timings[0].name.startswith("TA-Lib") else float("nan")
    print(f"| {'computation':36s} | outputs | median ms | min ms | CPU ms | x TA-Lib |")
    print(f"|{'-' * 38}|--------:|----------:|-------:|-------:|---------:|")
    for t in timings:
        wall = statistics.median(t.wall[1:])
        print(f"| {t.name:36s} | {t.outputs:7d} | {wall:9.1f} | {min(t.wall[1:]):6.1f} | "
              f"{statistics.median(t.cpu[1:]):6.1f} | {wall / anchor:8.2f} |")


if __name__ == "__main__":
    main()
