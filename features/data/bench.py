"""Benchmark: load and validate all bundled 1h data (`python -m features.data.bench`)."""

from __future__ import annotations

import os
import platform
import statistics
import time

from features.data.registry import load_dataset

HOURLY_SETS = ("binance_1h", "bitstamp_btc_1h", "kraken_btc_1h")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


def load_all_hourly() -> int:
    return sum(sum(f.height for f in load_dataset(name).dataset.series.values()) for name in HOURLY_SETS)


def main(repeats: int = 7) -> None:
    load_all_hourly()  # warm the file cache and imports
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        bars = load_all_hourly()
        timings.append(time.perf_counter() - started)
    print(f"machine: {machine()}")
    print(f"load + validate all bundled 1h data ({bars:,} bars in 8 series): "
          f"median {statistics.median(timings) * 1000:.0f} ms over {repeats} runs "
          f"(min {min(timings) * 1000:.0f} ms)")


if __name__ == "__main__":
    main()
