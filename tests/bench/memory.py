"""Resident memory of the service processes the bench started (issue 17, item 4).

`MemoryLog.record` samples a group's processes when its work is done, just before the bench
stops them; the figure of a service is its largest process. `soak_growth` is the soak's
measure: mean RSS of the last minute against the first minute after the warm-up.
"""

from __future__ import annotations

import math
import subprocess
from collections.abc import Iterable, Sequence

import psutil

from tests.bench.report import Figure

TARGET_MB = 150.0
MB = 1024 * 1024


def rss_mb(pid: int) -> float:
    """Resident set size of a process in MiB (NaN when it is gone)."""
    try:
        return float(psutil.Process(pid).memory_info().rss) / MB
    except psutil.Error:
        return math.nan


class MemoryLog:
    def __init__(self) -> None:
        self.largest: dict[str, float] = {}
        self.processes: dict[str, int] = {}

    def record(self, label: str, procs: Iterable[subprocess.Popen[bytes]]) -> None:
        for proc in procs:
            value = rss_mb(proc.pid)
            if math.isnan(value):
                continue
            self.largest[label] = max(self.largest.get(label, 0.0), value)
            self.processes[label] = self.processes.get(label, 0) + 1

    def figures(self) -> list[Figure]:
        if not self.largest:
            return []
        print("\nM. Resident memory (psutil RSS) of each service process, after its runs:")
        for label, value in self.largest.items():
            print(f"  {label:<24} {value:6.1f} MB (largest of {self.processes[label]} processes)")
        return [
            Figure(f"M RSS after the run: {label}", value, None, TARGET_MB, "MB")
            for label, value in self.largest.items()
        ]


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def soak_growth(
    samples: Sequence[tuple[float, float]], warmup_s: float, window_s: float = 60.0
) -> tuple[float, float, float]:
    """(first mean, last mean, growth %) of (seconds since start, RSS) samples: the mean of
    the samples in the first `window_s` after `warmup_s` against the mean of those in the last
    `window_s` of the run. NaN growth when either window holds no sample."""
    after = [(t, v) for t, v in samples if t >= warmup_s and not math.isnan(v)]
    if not after:
        return math.nan, math.nan, math.nan
    end = max(t for t, _ in after)
    first = mean([v for t, v in after if t < warmup_s + window_s])
    last = mean([v for t, v in after if t > end - window_s])
    if math.isnan(first) or math.isnan(last) or first == 0:
        return first, last, math.nan
    return first, last, (last - first) / first * 100
