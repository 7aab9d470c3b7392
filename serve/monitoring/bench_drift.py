"""Measure the break and anomaly detectors (``python -m serve.monitoring.bench_drift``).

Prints a Markdown report (the figures in docs/monitoring.md):

1. calibration: per channel, the CUSUM threshold below which a given fraction
   of stationary GBM series (1h bars, 1,000 bars after warm-up) raise a false
   alarm, from the maximum statistic of each series;
2. false alarms of the shipped :class:`DriftConfig` on fresh seeds, for GBM at
   several volatilities and for stationary but fat-tailed or volatility-
   clustering processes (Merton jumps, Heston);
3. detection delay on synthetic regime switches (volatility doubles or
   halves, drift flips);
4. real breaks in the bundled data and the data-anomaly false-alarm rates
   (:mod:`serve.monitoring.bench_data`).

Seeds are fixed, so the report is reproducible; ``--seeds`` trades time for precision.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from features.data.bench import machine
from features.data.synthetic import GeometricBrownianMotion, Heston, MertonJumpDiffusion, PriceProcess
from serve.monitoring import bench_data
from serve.monitoring.drift import DetectorSpec, DriftConfig, DriftMonitor, OnlineStandardizer

HORIZON = 1000  # monitored bars per stationary series
SWITCH_AT = 700  # bars before a synthetic regime switch (after the 200-bar warm-up: 500 monitored)
AFTER_SWITCH = 1000  # bars monitored after the switch
CHANNEL_TARGET = 0.005  # false-alarm probability per channel per 1,000 bars used for calibration


def log_returns(process: PriceProcess, n: int, seed: int, timeframe: str = "1h") -> np.ndarray:
    close = process.simulate(n + 1, timeframe, seed, substeps=4)["close"].to_numpy()
    return np.diff(np.log(close))


def channel_maxima(returns: np.ndarray, config: DriftConfig) -> tuple[float, float]:
    """Largest detector statistic of each channel over the series, thresholds ignored (infinite)."""
    maxima = []
    for spec, transform in ((config.returns, lambda r: r), (config.volatility, abs)):
        standardizer = OnlineStandardizer(config.warmup, config.halflife, config.clip)
        detector, largest = DetectorSpec(spec.method, spec.drift, math.inf).build(), 0.0
        for r in returns:
            z = standardizer.update(transform(r))
            if z is not None:
                detector.update(z)
                largest = max(largest, detector.statistic)
        maxima.append(largest)
    return maxima[0], maxima[1]


def calibrate(config: DriftConfig, seeds: Sequence[int]) -> DriftConfig:
    """``config`` with each channel's threshold exceeded by CHANNEL_TARGET of stationary GBM series."""
    process = GeometricBrownianMotion(0.0, 0.6)
    maxima = np.array(
        [channel_maxima(log_returns(process, config.warmup + HORIZON, s), config) for s in seeds]
    )
    h_returns, h_volatility = np.quantile(maxima, 1.0 - CHANNEL_TARGET, axis=0)
    return replace(
        config,
        returns=replace(config.returns, threshold=round(float(h_returns), 2)),
        volatility=replace(config.volatility, threshold=round(float(h_volatility), 2)),
    )


@dataclass(frozen=True)
class FalseAlarms:
    series: int
    with_alarm: float  # fraction of series with at least one alarm
    per_1000_bars: float

    def row(self, name: str) -> str:
        return f"| {name} | {self.series} | {self.with_alarm:.1%} | {self.per_1000_bars:.4f} |"


def false_alarms(
    process: PriceProcess, config: DriftConfig, seeds: Sequence[int], timeframe: str = "1h"
) -> FalseAlarms:
    alarmed, alarms = 0, 0
    for seed in seeds:
        monitor = DriftMonitor(config)
        for r in log_returns(process, config.warmup + HORIZON, seed, timeframe):
            monitor.update_return(float(r))
        alarmed += bool(monitor.alarms)
        alarms += len(monitor.alarms)
    return FalseAlarms(len(seeds), alarmed / len(seeds), alarms / (len(seeds) * HORIZON) * 1000)


@dataclass(frozen=True)
class SwitchResult:
    median: float
    mean: float
    p90: float
    missed: float  # fraction not detected within AFTER_SWITCH bars
    early: float  # fraction with a false alarm before the switch

    def row(self, name: str) -> str:
        return (
            f"| {name} | {self.median:.0f} | {self.mean:.1f} | {self.p90:.0f} | {self.missed:.0%} "
            f"| {self.early:.0%} |"
        )


def first_alarm_from(returns: np.ndarray, config: DriftConfig, start: int) -> tuple[int | None, bool]:
    """Bars from ``start`` to the first alarm at or after it, and whether an alarm came before it."""
    monitor, early = DriftMonitor(config), False
    for index, r in enumerate(returns):
        if monitor.update_return(float(r)) is not None:
            if index >= start:
                return index - start, early
            early = True
    return None, early


def switch_delays(
    before: PriceProcess,
    after: PriceProcess,
    config: DriftConfig,
    seeds: Sequence[int],
    timeframe: str = "1h",
) -> SwitchResult:
    delays, early = [], 0
    for seed in seeds:
        returns = np.concatenate(
            [
                log_returns(before, SWITCH_AT, 2 * seed, timeframe),
                log_returns(after, AFTER_SWITCH, 2 * seed + 1, timeframe),
            ]
        )
        delay, was_early = first_alarm_from(returns, config, SWITCH_AT)
        delays.append(math.nan if delay is None else delay)
        early += was_early
    found = np.array([d for d in delays if not math.isnan(d)])
    stats = (
        (float(np.median(found)), float(found.mean()), float(np.quantile(found, 0.9)))
        if len(found)
        else (math.nan, math.nan, math.nan)
    )
    return SwitchResult(*stats, missed=1 - len(found) / len(seeds), early=early / len(seeds))


GBM = GeometricBrownianMotion
STATIONARY: dict[str, tuple[PriceProcess, str]] = {
    "GBM, vol 60%, 1h": (GBM(0.0, 0.6), "1h"),
    "GBM, vol 20%, 1h": (GBM(0.0, 0.2), "1h"),
    "GBM, vol 120%, 1h": (GBM(0.0, 1.2), "1h"),
    "GBM, vol 60%, 1m": (GBM(0.0, 0.6), "1m"),
    "Merton jumps (10/yr, -5% +- 10%), 1h": (MertonJumpDiffusion(), "1h"),
    "Heston (vol of vol 0.8), 1h": (Heston(), "1h"),
}
SWITCHES: dict[str, tuple[PriceProcess, PriceProcess, str]] = {
    "volatility doubles (60% -> 120%), 1h": (GBM(0.0, 0.6), GBM(0.0, 1.2), "1h"),
    "volatility +50% (60% -> 90%), 1h": (GBM(0.0, 0.6), GBM(0.0, 0.9), "1h"),
    "volatility halves (60% -> 30%), 1h": (GBM(0.0, 0.6), GBM(0.0, 0.3), "1h"),
    "drift flips +300% -> -300%/yr, 1h": (GBM(3.0, 0.6), GBM(-3.0, 0.6), "1h"),
    "drift flips +200% -> -200%/yr, 1d": (GBM(2.0, 0.6), GBM(-2.0, 0.6), "1d"),
    "drift flips +500% -> -500%/yr, 1d": (GBM(5.0, 0.6), GBM(-5.0, 0.6), "1d"),
}


def section(title: str, header: str, rows: Callable[[], list[str]]) -> None:
    started = time.perf_counter()
    lines = rows()
    print(f"\n### {title}\n\n{header}")
    print("\n".join(lines))
    print(f"\n({time.perf_counter() - started:.1f} s)")


def describe(config: DriftConfig) -> str:
    r, v = config.returns, config.volatility
    return (
        f"returns {r.method} (drift {r.drift}, h {r.threshold}), "
        f"volatility {v.method} (drift {v.drift}, h {v.threshold})"
    )


FALSE_ALARM_HEADER = (
    "| stationary series | series | with a false alarm | alarms per 1,000 bars |\n|---|---|---|---|"
)
SWITCH_HEADER = (
    "| regime switch | median delay (bars) | mean | 90th pct | missed in 1,000 bars | alarm before switch |\n"
    "|---|---|---|---|---|---|"
)


def report_false_alarms(shipped: DriftConfig, page_hinkley: DriftConfig, seeds: Sequence[int]) -> None:
    section(
        "False alarms of the shipped DriftConfig (fresh seeds)",
        FALSE_ALARM_HEADER,
        lambda: [
            false_alarms(process, shipped, seeds, tf).row(name) for name, (process, tf) in STATIONARY.items()
        ],
    )
    section(
        "False alarms of calibrated Page-Hinkley, for comparison",
        FALSE_ALARM_HEADER,
        lambda: [false_alarms(GBM(0.0, 0.6), page_hinkley, seeds).row("GBM, vol 60%, 1h (Page-Hinkley)")],
    )


def report_switches(shipped: DriftConfig, page_hinkley: DriftConfig, seeds: Sequence[int]) -> None:
    title = f"Detection delay of the shipped DriftConfig on synthetic switches ({len(seeds)} seeds each)"
    section(
        title,
        SWITCH_HEADER,
        lambda: [switch_delays(a, b, shipped, seeds, tf).row(name) for name, (a, b, tf) in SWITCHES.items()],
    )
    section(
        "Page-Hinkley on the same switches",
        SWITCH_HEADER,
        lambda: [
            switch_delays(a, b, page_hinkley, seeds, tf).row(f"{name} (Page-Hinkley)")
            for name, (a, b, tf) in list(SWITCHES.items())[:3]
        ],
    )


def run(seeds: int) -> None:
    shipped = DriftConfig()
    calibration_seeds, test_seeds = range(10_000, 10_000 + seeds), range(seeds)
    calibrated = calibrate(shipped, calibration_seeds)
    page_hinkley = calibrate(
        replace(
            shipped,
            returns=DetectorSpec("page_hinkley", 0.25, 1.0),
            volatility=DetectorSpec("page_hinkley", 0.5, 1.0),
        ),
        calibration_seeds,
    )
    print(f"machine: {machine()}\n")
    print(
        f"Calibration on {seeds} GBM series (vol 60%, 1h, {HORIZON} bars after a {shipped.warmup}-bar "
        f"warm-up), target {CHANNEL_TARGET:.2%} false alarms per channel:\n\n"
        f"* CUSUM: {describe(calibrated)}\n* Page-Hinkley: {describe(page_hinkley)}\n"
        f"* shipped DriftConfig: {describe(shipped)}"
    )
    report_false_alarms(shipped, page_hinkley, test_seeds)
    report_switches(shipped, page_hinkley, range(min(seeds, 300)))
    bench_data.run(shipped)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=1000, help="stationary series per figure (default 1000)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    run(args.seeds)
    print(
        f"\ntotal {time.perf_counter() - started:.0f} s; command: python -m serve.monitoring.bench_drift "
        f"--seeds {args.seeds}"
    )


if __name__ == "__main__":
    main()
