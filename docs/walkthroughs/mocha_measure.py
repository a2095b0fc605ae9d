"""Numbers quoted in docs/walkthroughs/mocha.md: parallel-form error and backend timings.

    .venv/bin/python docs/walkthroughs/mocha_measure.py
"""

from __future__ import annotations

import time

import numpy as np

from scratchasr.ops.mocha import (mocha_chunk_backward, mocha_chunk_forward, monotonic_attention_backward,
                                  monotonic_attention_forward)


def parallel_error_table():
    print("max |alpha_parallel - alpha_recursive|, alpha_prev one-hot at frame k, T = k + 20, float64")
    print(f"{'p':>12} " + " ".join(f"k={k:<8d}" for k in (5, 20, 30, 40, 100)))
    for p_val in (0.1, 0.5, 0.9, 1 - 1e-3, 1 - 1e-6):
        row = []
        for k in (5, 20, 30, 40, 100):
            T = k + 20
            p = np.full((1, T), p_val)
            a = np.zeros((1, T))
            a[0, k] = 1.0
            exact, _ = monotonic_attention_forward(p, a)
            par, _ = monotonic_attention_forward(p, a, mode="parallel")
            row.append(np.abs(par - exact).max())
        print(f"{p_val:>12.6g} " + " ".join(f"{x:<10.2e}" for x in row))
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, size=(64, 200))
    a = rng.dirichlet(np.ones(200), size=64)
    exact, _ = monotonic_attention_forward(p, a)
    par, _ = monotonic_attention_forward(p, a, mode="parallel")
    print(f"random p ~ U(0,1), random alpha_prev, B=64, T=200: "
          f"max abs error {np.abs(par - exact).max():.2e}, "
          f"max |alpha| {exact.max():.2f}")


def timing(B=32, T=400, w=4, reps=20):
    rng = np.random.default_rng(0)
    p = rng.uniform(size=(B, T))
    a = rng.dirichlet(np.ones(T), size=B)
    u = rng.standard_normal((B, T))
    print(f"\nforward+backward, B={B}, T={T}, w={w}, median of {reps} runs (ms)")
    for name, kw in (("recursive numpy", dict(backend="numpy")), ("recursive numba", dict(backend="numba")),
                     ("parallel numpy", dict(mode="parallel"))):
        monotonic_attention_backward(np.ones((B, T)), monotonic_attention_forward(p, a, **kw)[1])  # warm-up
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter()
            al, c = monotonic_attention_forward(p, a, **kw)
            monotonic_attention_backward(al, c)
            ts.append(time.perf_counter() - t0)
        print(f"  monotonic {name:<16} {1e3 * np.median(ts):8.3f}")
    for be in ("numpy", "numba"):
        mocha_chunk_backward(np.ones((B, T)), mocha_chunk_forward(a, u, chunk_size=w, backend=be)[1])
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter()
            be_, c = mocha_chunk_forward(a, u, chunk_size=w, backend=be)
            mocha_chunk_backward(be_, c)
            ts.append(time.perf_counter() - t0)
        print(f"  chunk     {be:<16} {1e3 * np.median(ts):8.3f}")


if __name__ == "__main__":
    parallel_error_table()
    timing()
