"""Benchmark of baseline backtests (`python -m rl.bench_backtest`, part of `make bench`).

Five years of hourly Binance BTC/USDT bars (43,800 evaluated bars, minimal features, default costs):
the time of one ``backtest()`` call per baseline — building the environment, computing the
baseline's signals, stepping through every bar, the ledger and every metric — as the median of
several runs, next to the episode loop alone (the policy's act plus the environment's step).  One
multi-asset line: the six bundled coins (their common history, 4.4 years), ERC rebalanced weekly.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

from envs import EnvConfig, TradingEnv
from features.data.bench import machine
from features.data.registry import load_dataset
from features.panel import FeaturePanel
from features.pipeline import FeaturePipeline
from rl.backtest import backtest, gc_paused, run_episode
from rl.baselines import Baseline, make_baseline

FIVE_YEARS_HOURLY = 5 * 365 * 24
WINDOW = 32
SINGLE = ("buy_and_hold", "equal_weight_rebalanced", "ma_crossover", "donchian", "zscore_reversion", "logistic")


def timings(run: Callable[[], object], repeats: int) -> list[float]:
    """Seconds of ``repeats`` runs after one warm-up run."""
    run()
    out = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        out.append(time.perf_counter() - started)
    return out


def last_five_years(name: str) -> tuple[FeaturePanel, FeaturePanel]:
    """(the last five years of bars (or all there are) with a window before them, every earlier row)."""
    panel = FeaturePipeline.from_config("minimal").panel(load_dataset(name).dataset)
    first = max(WINDOW + 2, panel.n_bars - FIVE_YEARS_HOURLY)
    return panel.slice(first - WINDOW, panel.n_bars), panel.slice(0, first)


def report(label: str, policy: Baseline, panel: FeaturePanel, config: EnvConfig, repeats: int) -> str:
    whole = timings(lambda: backtest(policy, panel, config), repeats)
    env = TradingEnv(panel, policy.env_config(config))

    def episode() -> None:
        with gc_paused():
            run_episode(policy, env)

    loop = timings(episode, repeats)
    steps = panel.n_bars - WINDOW
    return (f"| {label} | {statistics.median(whole) * 1000:,.0f} ms (min {min(whole) * 1000:,.0f}) | "
            f"{statistics.median(loop) * 1000:,.0f} ms | {steps / statistics.median(loop):,.0f} |")


def main(repeats: int = 5) -> None:
    config = EnvConfig(window=WINDOW, mode="eval")
    btc, btc_train = last_five_years("binance_btc_1h")
    coins, _ = last_five_years("binance_1h")
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f}")
    print(f"{btc.n_bars - WINDOW:,} hourly bars of BTC/USDT ({btc.timestamps[WINDOW]} .. {btc.timestamps[-1]}), "
          f"median of {repeats} runs after a warm-up\n")
    print("| baseline | backtest() | episode loop | steps/s |\n| --- | ---: | ---: | ---: |")
    for name in SINGLE:
        policy = make_baseline(name, None, btc_train)  # learned: fitted on the rows before the five years
        print(report(f"{name}, BTC/USDT", policy, btc, config, repeats))
    print(report(f"erc, 6 coins ({coins.n_bars - WINDOW:,} bars)", make_baseline("erc"), coins, config, repeats))


if __name__ == "__main__":
    main()
