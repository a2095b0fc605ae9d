"""Interleaved timing for side-by-side benchmarks on a shared machine.

Every repeat runs each contender once, one after the other, so a change of load during the run hits all
of them alike; each call is measured in wall time (``perf_counter``) and in the CPU time of the calling
thread (``thread_time``: what the single-threaded computation itself consumed, not the time it waited
while other processes held the cores). Medians are reported with the spread (min..max), and the ratio of
two contenders as the median of their per-repeat ratios.
"""

from __future__ import annotations

import os
import time
from typing import Callable, Dict, List

import numpy as np


def load() -> str:
    """The 1, 5, 15 minute load averages (``uptime``), e.g. ``"3.05 2.10 1.95"``."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def interleaved(fns: Dict[str, Callable[[], object]], repeats: int) -> Dict[str, Dict[str, List[float]]]:
    """Warm each function up once, then ``repeats`` rounds calling each once.

    Returns ``{name: {"wall": [s, ...], "cpu": [s, ...]}}``."""
    for fn in fns.values():
        fn()
    out = {name: {"wall": [], "cpu": []} for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            w0, c0 = time.perf_counter(), time.thread_time()
            fn()
            c1, w1 = time.thread_time(), time.perf_counter()
            out[name]["wall"].append(w1 - w0)
            out[name]["cpu"].append(c1 - c0)
    return out


def summary(ts: List[float], scale: float = 1e3) -> str:
    """``"median (min..max)"`` in ms."""
    a = np.asarray(ts) * scale
    return f"{np.median(a):.1f} ({a.min():.1f}..{a.max():.1f})"


def ratio(a: List[float], b: List[float]) -> float:
    """Median over repeats of a[i] / b[i]."""
    return float(np.median(np.asarray(a) / np.asarray(b)))
