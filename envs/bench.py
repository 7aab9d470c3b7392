"""Steps per second of the trading environment next to a minimal numpy reference env.

Run ``python -m envs.bench`` (or ``make bench``).  Random actions are drawn
up front so that only the environments are timed; every figure is the
median of 5 runs, single process.  Bars are a seeded synthetic random walk
(45,000 bars, window 32, 16 features), so the numbers do not depend on any
data file.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from envs.config import EnvConfig, SchemeSpec
from envs.trading_env import TradingEnv
from features.data.schema import BarKey
from features.panel import FeaturePanel

BARS, WINDOW, FEATURES, REPEATS = 45_000, 32, 16, 5
# The issue's figures were measured where this reference env ran 1,490,000 steps/s; its targets (250,000
# steps/s for one instrument, 50,000 for six) are therefore time-per-step ratios: 5.96x and 29.8x the reference.
ISSUE_REFERENCE_RATE = 1_490_000
TARGETS = {"1 instrument, discrete hold/buy/sell": 250_000, "6 instruments, continuous target weights": 50_000}


class MinimalNumpyEnv:
    """The floor: window slice observation, hold/buy/sell all in, proportional fee, no info."""

    def __init__(self, features: np.ndarray, close: np.ndarray, window: int = WINDOW, fee: float = 0.001) -> None:
        self.features, self.close, self.window, self.fee = features, close, window, fee

    def reset(self) -> tuple[np.ndarray, dict[str, Any]]:
        self.t, self.cash, self.units, self.net_worth = self.window - 1, 1.0, 0.0, 1.0
        return self.features[self.t - self.window + 1 : self.t + 1], {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        price = self.close[self.t]
        if action == 1 and self.units == 0.0:
            self.units, self.cash = self.cash * (1.0 - self.fee) / price, 0.0
        elif action == 2 and self.units > 0.0:
            self.cash, self.units = self.units * price * (1.0 - self.fee), 0.0
        self.t += 1
        t = self.t
        net_worth = self.cash + self.units * self.close[t]
        reward, self.net_worth = net_worth - self.net_worth, net_worth
        return self.features[t - self.window + 1 : t + 1], reward, t >= len(self.close) - 1, False, {}


def synthetic_panel(n_instruments: int, bars: int = BARS, seed: int = 0) -> FeaturePanel:
    """Random-walk OHLCV bars on distinct exchanges/symbols and Gaussian features."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.0, 0.01, size=(bars, n_instruments))
    close = 100.0 * np.exp(np.cumsum(steps, axis=0))
    open_ = np.vstack([close[:1], close[:-1]])
    spread = np.abs(rng.normal(0.0, 0.004, size=close.shape))
    ohlcv = np.stack(
        [open_, np.maximum(open_, close) * (1 + spread), np.minimum(open_, close) * (1 - spread), close,
         rng.uniform(20_000.0, 60_000.0, size=close.shape)], axis=-1
    )
    venues = ("binance", "bitstamp", "kraken")
    keys = tuple(BarKey(venues[i % 3], f"C{i}/USD", "1h") for i in range(n_instruments))
    stamps = np.datetime64("2020-01-01T00:00", "us") + np.arange(bars) * np.timedelta64(3600, "s")
    features = rng.standard_normal((bars, n_instruments, FEATURES)).astype(np.float32)
    return FeaturePanel(stamps, keys, tuple(f"f{i}" for i in range(FEATURES)), features, ohlcv)


def _timed(run: Callable[[], int]) -> float:
    started = time.perf_counter()
    steps = run()
    return steps / (time.perf_counter() - started)


def reference_runner(steps: int) -> Callable[[], int]:
    panel = synthetic_panel(1)
    env = MinimalNumpyEnv(panel.features[:, 0, :], panel.close[:, 0])
    actions = np.random.default_rng(1).integers(0, 3, steps).tolist()

    def run() -> int:
        env.reset()
        for action in actions:
            env.step(action)
        return len(actions)

    return run


def env_runner(config: EnvConfig, n_instruments: int, steps: int) -> Callable[[], int]:
    env = TradingEnv(synthetic_panel(n_instruments), config)
    env.action_space.seed(1)
    actions = [env.action_space.sample() for _ in range(steps)]
    if isinstance(actions[0], np.integer):
        actions = [int(a) for a in actions]

    def run() -> int:
        env.reset(seed=0)
        done = 0
        for action in actions:
            _, _, terminated, truncated, _ = env.step(action)
            done += 1
            if terminated or truncated:
                env.reset()
        return done

    return run


def compare(env_run: Callable[[], int], reference_run: Callable[[], int]) -> tuple[float, float, float]:
    """Median steps/s of the env and the reference, and the median of their paired time ratios.

    The two run alternately, so a load change on a shared machine hits both sides of a ratio.
    """
    pairs = [(_timed(reference_run), _timed(env_run)) for _ in range(REPEATS)]
    references, envs = [r for r, _ in pairs], [e for _, e in pairs]
    return statistics.median(envs), statistics.median(references), statistics.median(r / e for r, e in pairs)


def bench_construction(n_instruments: int) -> float:
    panel = synthetic_panel(n_instruments)
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        TradingEnv(panel, EnvConfig(mode="eval"))
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def machine() -> str:
    """CPU model and core count, for the record next to the figures."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            model = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{model}, {os.cpu_count()} cores, python {platform.python_version()}, numpy {np.__version__}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--steps", type=int, default=40_000, help="steps per timed run (single instrument)")
    args = parser.parse_args(argv)
    steps = min(args.steps, BARS - WINDOW - 1)
    # Training episodes (random starts, 720 steps, resets included): random trading over one 45,000-bar
    # evaluation span would spend the account below the minimum order size and stop placing orders.
    def config(action: str) -> EnvConfig:
        return EnvConfig(window=WINDOW, mode="train", episode_length=720, action=SchemeSpec(action))

    print(f"machine: {machine()}")
    print(f"median of {REPEATS} runs, window {WINDOW}, {FEATURES} features, random actions, default costs "
          "(0.1% fees, 5 bps + volatility slippage, impact), full info")
    reference = reference_runner(steps)
    cases = [
        ("1 instrument, discrete hold/buy/sell", env_runner(config("discrete"), 1, steps)),
        ("6 instruments, continuous target weights", env_runner(config("weights"), 6, steps // 4)),
        ("6 instruments, instrument x size", env_runner(config("multi_discrete"), 6, steps // 2)),
    ]
    for label, run in cases:
        rate, reference_rate, ratio = compare(run, reference)
        print(f"TradingEnv {label:<44} {rate:>9,.0f} steps/s; reference env {reference_rate:>10,.0f} steps/s; "
              f"{ratio:4.1f}x its time per step")
        if label in TARGETS:
            scaled = ISSUE_REFERENCE_RATE / ratio
            verdict = "meets" if scaled >= TARGETS[label] else "misses"
            print(f"    at the issue's reference speed ({ISSUE_REFERENCE_RATE:,}/s): {scaled:,.0f} steps/s, "
                  f"{verdict} the {TARGETS[label]:,} target")
    for n in (1, 6):
        label = f"construction on {BARS:,} bars, {n} instrument{'s' if n > 1 else ''}"
        print(f"{label:<58} {bench_construction(n) * 1000:>11,.0f} ms")


if __name__ == "__main__":
    main()
