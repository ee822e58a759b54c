"""Measuring helpers the benchmarks share: process CPU and memory from /proc, percentiles, /metrics samples.

Read straight from the kernel and from the exposition text, so a benchmark needs no profiler and no
Prometheus server, and the numbers mean the same thing on every machine.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class ProcSample:
    """One process at one moment: CPU consumed since it started, its peak and its current resident memory."""

    cpu_seconds: float
    peak_rss_bytes: int
    rss_bytes: int

    def minus(self, earlier: ProcSample) -> ProcSample:
        """CPU used between two samples; memory stays as of the later one (a high-water mark has no delta)."""
        return ProcSample(self.cpu_seconds - earlier.cpu_seconds, self.peak_rss_bytes, self.rss_bytes)


def proc_sample(pid: int) -> ProcSample:
    """utime+stime from /proc/<pid>/stat and VmHWM/VmRSS from /proc/<pid>/status."""
    proc = Path("/proc") / str(pid)
    text = (proc / "stat").read_text()
    # The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    fields = text[text.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    memory = {}
    for line in (proc / "status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            memory[key] = int(value.split()[0]) * 1024  # kB
    return ProcSample((utime + stime) / _CLOCK_TICKS, memory.get("VmHWM", 0), memory.get("VmRSS", 0))


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by nearest rank: with few samples, p99 is the worst one, as it should be."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def parse_sample_key(key: str) -> tuple[str, dict[str, str]]:
    """``name{a="x",b="y"}`` -> ``(name, {a: x, b: y})``: label order in the text is not something to rely on."""
    name, _, rest = key.partition("{")
    return name, dict(_LABEL.findall(rest))


def metric_total(samples: Mapping[str, float], name: str, **labels: str) -> float:
    """The sum of one metric over every label set matching ``labels`` (a counter across all its series)."""
    total = 0.0
    for key, value in samples.items():
        found, found_labels = parse_sample_key(key)
        if found == name and all(found_labels.get(k) == v for k, v in labels.items()):
            total += value
    return total


def metric_series(samples: Mapping[str, float], name: str) -> list[tuple[dict[str, str], float]]:
    """Every series of one metric with its labels."""
    series = []
    for key, value in samples.items():
        found, found_labels = parse_sample_key(key)
        if found == name:
            series.append((found_labels, value))
    return series
