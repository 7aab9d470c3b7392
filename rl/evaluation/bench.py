"""Benchmark of the evaluation core (`python -m rl.evaluation.bench`).

Times 1,000 block-bootstrap Monte Carlo runs of 5 years of hourly returns
(43,800 bars, both bootstrap methods), all metrics of the 45,013-bar bundled
Binance BTC/USDT 1h curve with and without a fills ledger, and a PBO by CSCV.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import polars as pl

from features.data.bench import machine
from features.data.registry import load_dataset
from rl.evaluation.metrics import compute_metrics
from rl.evaluation.montecarlo import bootstrap_returns
from rl.evaluation.statistics import probability_of_backtest_overfitting

FIVE_YEARS_HOURLY = 5 * 365 * 24


def timed(run: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(median, min) seconds over ``repeats`` runs after one warm-up run."""
    run()
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings), min(timings)


def crossover_ledger(bars: pl.DataFrame, window: int = 48, fee: float = 0.001) -> pl.DataFrame:
    """Fills of an all-in long/flat SMA crossover, one row per entry or exit (a realistic ledger size)."""
    close = bars["close"].to_numpy()
    above = close > pd.Series(close).rolling(window).mean().to_numpy()
    changes = np.flatnonzero(np.diff(above.astype(int)) != 0) + 1
    changes = changes[1:] if above[changes[0]] == 0 else changes
    sides = np.where(np.arange(changes.size) % 2 == 0, "buy", "sell")
    qty = 1.0
    return pl.DataFrame(
        {
            "timestamp": bars["timestamp"].gather(changes),
            "bar_index": changes,
            "instrument": "BTC/USDT",
            "side": sides,
            "qty": qty,
            "price": close[changes],
            "fee": close[changes] * qty * fee,
            "slippage": 0.0,
            "status": "filled",
        }
    )


def line(label: str, result: tuple[float, float], repeats: int) -> str:
    median, best = result
    return f"{label}: median {median * 1000:,.0f} ms over {repeats} runs (min {best * 1000:,.0f} ms)"


def main(repeats: int = 5) -> None:
    bars = load_dataset("binance_btc_1h").dataset["BTC/USDT"]
    equity = pd.Series(bars["close"].to_numpy(), index=pd.DatetimeIndex(bars["timestamp"].to_pandas()))
    returns = equity.pct_change().dropna().to_numpy()[-FIVE_YEARS_HOURLY:]
    ledger = crossover_ledger(bars)
    noise = np.random.default_rng(0).normal(0, 0.01, (FIVE_YEARS_HOURLY, 50))
    print(f"machine: {machine()}")
    for method in ("stationary", "fixed"):

        def bootstrap(method: str = method) -> object:
            return bootstrap_returns(returns, 1_000, method=method, seed=1)  # type: ignore[arg-type]

        label = f"1,000 {method} block-bootstrap paths x {FIVE_YEARS_HOURLY:,} hourly bars"
        print(line(label, timed(bootstrap, repeats), repeats))
    print(
        line(
            f"compute_metrics, {len(equity):,} bars",
            timed(lambda: compute_metrics(equity, "1h"), repeats),
            repeats,
        )
    )
    with_ledger = timed(lambda: compute_metrics(equity, "1h", ledger=ledger), repeats)
    print(
        line(
            f"compute_metrics, {len(equity):,} bars + ledger of {ledger.height:,} fills", with_ledger, repeats
        )
    )
    pbo = timed(lambda: probability_of_backtest_overfitting(noise, 16), 1)
    print(line(f"PBO by CSCV, {FIVE_YEARS_HOURLY:,} bars x 50 configs, S=16 (12,870 splits)", pbo, 1))


if __name__ == "__main__":
    main()
