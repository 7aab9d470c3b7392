"""Detector figures on the bundled real data, printed by ``python -m serve.monitoring.bench_drift``.

* Known breaks: the COVID crash (2020-03-12) and the May 2021 crash
  (2021-05-19) in the Binance 1h data, and the USDC de-peg of March 2023 in
  the Binance.US minute data, watched through the BTC/USDC : BTC/USD price
  ratio (with BTC/USDT : BTC/USD as a control that did not de-peg).
* Data anomalies: price-spike alerts per 1,000 bars on every bundled series
  (each one a false alarm, since the bundled data holds no bad prints),
  missing-bar alerts against the gaps recorded in PROVENANCE.tsv, and the
  share of injected bad prints (one bar's close off by 5% or 20%) caught.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from features.data.registry import load_dataset, provenance
from features.data.schema import TIMESTAMP, BarKey
from serve.monitoring.anomalies import AnomalyConfig, BarAnomalyMonitor
from serve.monitoring.drift import DriftAlarm, DriftConfig, DriftMonitor

LEAD_IN = timedelta(days=60)  # the monitor starts this long before a break (warm-up included)
LOOK_BACK = timedelta(days=7)  # alarms this close before a break are reported separately
FOLLOW = timedelta(days=10)
DEPEG_ONSET_DEVIATION = 0.005  # the de-peg starts when BTC/USDC : BTC/USD first leaves 1 by 0.5%
ANOMALY_SETS = (
    "binance_1h",
    "binance_1d",
    "bitstamp_btc_1h",
    "bitstamp_1d",
    "kraken_btc_5m",
    "kraken_btc_15m",
    "kraken_btc_1h",
    "kraken_btcusdt_5m",
    "binanceus_btc_1m",
)
BAD_PRINTS = 100  # injected per series and size
BAD_PRINT_SIZES = (0.05, 0.20)


@dataclass(frozen=True)
class BreakResult:
    series: str
    before: list[DriftAlarm]  # within LOOK_BACK before the reference
    after: DriftAlarm | None  # first alarm at or after it
    bar: timedelta
    reference: datetime

    def row(self) -> str:
        earlier = ", ".join(f"{a.time:%m-%d %H:%M}" for a in self.before) or "none"
        if self.after is None or self.after.time is None:
            return f"| {self.series} | {earlier} | not within {FOLLOW.days} days | | |"
        delay = self.after.time - self.reference
        return (
            f"| {self.series} | {earlier} | {self.after.time:%Y-%m-%d %H:%M} ({self.after.channel}) "
            f"| {delay / self.bar:.0f} | {delay.total_seconds() / 3600:.1f} |"
        )


def watch(
    name: str, frame: pl.DataFrame, reference: datetime, bar: timedelta, config: DriftConfig
) -> BreakResult:
    window = frame.filter(
        (pl.col(TIMESTAMP) >= reference - LEAD_IN) & (pl.col(TIMESTAMP) < reference + FOLLOW)
    )
    monitor = DriftMonitor(config, name)
    for stamp, close in zip(window[TIMESTAMP], window["close"], strict=True):
        monitor.update_price(float(close), stamp + bar)  # a bar is known at its close
    before = [a for a in monitor.alarms if a.time and reference - LOOK_BACK <= a.time < reference]
    after = next((a for a in monitor.alarms if a.time and a.time >= reference), None)
    return BreakResult(name, before, after, bar, reference)


def crash_rows(config: DriftConfig) -> list[str]:
    dataset = load_dataset("binance_1h").dataset
    rows = []
    for reference in (datetime(2020, 3, 12, tzinfo=UTC), datetime(2021, 5, 19, tzinfo=UTC)):
        for key in dataset.keys:
            result = watch(
                f"{reference:%Y-%m-%d} {key.symbol}", dataset[key], reference, timedelta(hours=1), config
            )
            rows.append(result.row())
    return rows


def price_ratio(dataset_name: str, numerator: str, denominator: str) -> pl.DataFrame:
    dataset = load_dataset(dataset_name).dataset
    top = dataset[numerator].select(TIMESTAMP, pl.col("close").alias("top"))
    bottom = dataset[denominator].select(TIMESTAMP, pl.col("close").alias("bottom"))
    joined = top.join(bottom, on=TIMESTAMP).sort(TIMESTAMP)
    return joined.select(TIMESTAMP, (pl.col("top") / pl.col("bottom")).alias("close"))


def depeg_rows(config: DriftConfig) -> tuple[datetime, list[str], list[str]]:
    usdc = price_ratio("binanceus_btc_1m", "BTC/USDC", "BTC/USD")
    onset = usdc.filter((pl.col("close") - 1).abs() > DEPEG_ONSET_DEVIATION)[TIMESTAMP][0]
    minute, rows, rates = timedelta(minutes=1), [], []
    for name, frame in (
        ("BTC/USDC : BTC/USD", usdc),
        ("BTC/USDT : BTC/USD (control)", price_ratio("binanceus_btc_1m", "BTC/USDT", "BTC/USD")),
    ):
        rows.append(watch(name, frame, onset, minute, config).row())
        monitor = DriftMonitor(config, name)
        quiet = frame.filter(pl.col(TIMESTAMP) < onset - timedelta(hours=1))
        for close in quiet["close"]:
            monitor.update_price(float(close))
        monitored = max(1, quiet.height - config.warmup)
        rates.append(
            f"{name}: {len(monitor.alarms)} alarms in {monitored:,} monitored minutes before the onset "
            f"({len(monitor.alarms) / monitored * 1000:.2f} per 1,000 bars)"
        )
    return onset, rows, rates


@dataclass(frozen=True)
class AnomalyResult:
    key: BarKey
    bars: int
    spikes: int
    missing_bars: int
    provenance_missing: str
    caught: dict[float, float]

    def row(self) -> str:
        caught = " | ".join(f"{self.caught[size]:.0%}" for size in BAD_PRINT_SIZES)
        return (
            f"| {self.key} | {self.bars:,} | {self.spikes} | {self.spikes / self.bars * 1000:.2f} "
            f"| {self.missing_bars} ({self.provenance_missing}) | {caught} |"
        )


def spike_alerts(
    key: BarKey, times: pl.Series, closes: np.ndarray, config: AnomalyConfig
) -> tuple[set[int], int]:
    """Indices of bars flagged as spikes, and the number of missing bars reported."""
    monitor = BarAnomalyMonitor(str(key), key.timeframe, config)
    flagged, missing = set(), 0
    for index, (stamp, close) in enumerate(zip(times, closes, strict=True)):
        for alert in monitor.on_bar(stamp, float(close)):
            if alert.kind.value == "price_spike":
                flagged.add(index)
            elif alert.kind.value == "missing_bars":
                missing += int(alert.value or 0)
    return flagged, missing


def bad_print_catch_rate(key: BarKey, frame: pl.DataFrame, size: float, config: AnomalyConfig) -> float:
    """Share of BAD_PRINTS injected bad prints flagged, injected at least a spike window apart per pass."""
    rng = np.random.default_rng(zlib.crc32(f"{key}|{size}".encode()))
    closes = frame["close"].to_numpy()
    spacing = max(config.spike_window, (len(closes) - config.spike_window) // BAD_PRINTS)
    caught = injected = 0
    while injected < BAD_PRINTS:
        start = config.spike_window + int(rng.integers(0, spacing))
        positions = np.arange(start, len(closes) - 1, spacing)[: BAD_PRINTS - injected]
        if not len(positions):
            break
        faulty = closes.copy()
        faulty[positions] *= 1.0 + size * rng.choice([-1.0, 1.0], len(positions))
        flagged, _ = spike_alerts(key, frame[TIMESTAMP], faulty, config)
        caught += len(flagged & set(positions.tolist()))
        injected += len(positions)
    return caught / max(1, injected)


def anomaly_rows(config: AnomalyConfig) -> list[str]:
    rows = []
    for name in ANOMALY_SETS:
        dataset = load_dataset(name).dataset
        for key in dataset.keys:
            frame = dataset[key]
            flagged, missing = spike_alerts(key, frame[TIMESTAMP], frame["close"].to_numpy(), config)
            recorded = provenance()[key]
            caught = {size: bad_print_catch_rate(key, frame, size, config) for size in BAD_PRINT_SIZES}
            result = AnomalyResult(
                key,
                frame.height,
                len(flagged),
                missing,
                f"{float(recorded['missing_bars']):.0f} in PROVENANCE",
                caught,
            )
            rows.append(result.row())
    return rows


def run(config: DriftConfig, anomalies: AnomalyConfig | None = None) -> None:
    header = (
        "| break, series | alarms in the 7 days before | first alarm at or after the reference "
        "| delay (bars) | delay (hours) |\n|---|---|---|---|---|"
    )
    print(
        f"\n### Known breaks in the Binance 1h data (reference 00:00 UTC of the day; monitor started "
        f"{LEAD_IN.days} days before)\n\n{header}"
    )
    print("\n".join(crash_rows(config)))
    onset, rows, rates = depeg_rows(config)
    print(
        f"\n### USDC de-peg, Binance.US 1m price ratios (reference: first minute off by "
        f"{DEPEG_ONSET_DEVIATION:.1%}, {onset:%Y-%m-%d %H:%M} UTC)\n\n{header}"
    )
    print("\n".join(rows))
    print("\n" + "\n".join(f"* {line}" for line in rates))
    anomalies = anomalies or AnomalyConfig()
    sizes = " | ".join(f"{size:.0%} bad prints caught" for size in BAD_PRINT_SIZES)
    print(
        f"\n### Data anomalies on the bundled data "
        f"(spike threshold {anomalies.spike_threshold} robust sd)\n\n"
        f"| series | bars | spike alerts | per 1,000 bars | missing bars reported | {sizes} |\n"
        f"|---|---|---|---|---|---|---|"
    )
    print("\n".join(anomaly_rows(anomalies)))
