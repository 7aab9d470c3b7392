"""CPU time and memory of this process's descendants (a local Ray started here), from /proc (Linux).

:class:`ResourceMonitor` measures, over a ``with`` block, the CPU used by every process under the
current one (as a share of the machine's logical CPUs), the peak of their summed resident memory
(sampled; shared pages count once per process, so it overstates), and the whole machine's CPU
utilisation for context (other jobs included).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def _cpu_seconds_and_rss(pids: Sequence[int]) -> tuple[float, float]:
    ticks, page = os.sysconf("SC_CLK_TCK"), os.sysconf("SC_PAGE_SIZE")
    cpu, rss = 0.0, 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            cpu += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
            rss += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
        except (OSError, IndexError, ValueError):
            continue  # the process ended between listing and reading
    return cpu, rss


def _machine_busy() -> tuple[float, float]:
    values = [float(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


class ResourceMonitor:
    """Samples the Ray processes under this one (the serving stack; not this load generator)."""

    def __init__(self, period: float = 0.5) -> None:
        self.period = period
        self.peak_rss = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ResourceMonitor:
        self._cpu0, _ = _cpu_seconds_and_rss(_descendants(os.getpid()))
        self._busy0, self._total0 = _machine_busy()
        self._t0 = time.perf_counter()
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            _, rss = _cpu_seconds_and_rss(_descendants(os.getpid()))
            self.peak_rss = max(self.peak_rss, rss)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        cpu, rss = _cpu_seconds_and_rss(_descendants(os.getpid()))
        busy, total = _machine_busy()
        elapsed = time.perf_counter() - self._t0
        self.peak_rss = max(self.peak_rss, rss)
        self.cpu_percent = (cpu - self._cpu0) / elapsed / (os.cpu_count() or 1) * 100
        self.machine_percent = (busy - self._busy0) / max(total - self._total0, 1e-9) * 100
