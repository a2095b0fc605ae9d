"""Numbers quoted in docs/walkthroughs/ops.md: reference agreement, gradient checks, a planted bug, timings.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 .venv/bin/python docs/walkthroughs/ops_measure.py
"""

from __future__ import annotations

import time

import numpy as np

from scratchasr.ops.linear import linear_backward, linear_forward
from scratchasr.ops.norm import LayerNormCache, layer_norm_backward, layer_norm_forward
from scratchasr.ops.softmax import softmax_backward, softmax_forward
from scratchasr.testing import gradcheck
from scratchasr.testing.reference import layer_norm_naive, linear_naive, softmax_naive


def best_of(fn, reps=5):
    best = np.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def agreement(rng):
    print("== naive reference vs vectorised op (float64, N = 6 rows)")
    x, W, b = rng.standard_normal((6, 5)), rng.standard_normal((4, 5)), rng.standard_normal(4)
    print(f"linear      max abs diff {np.abs(linear_naive(x, W, b) - linear_forward(x, W, b)[0]).max():.1e}")
    s = 20 * rng.standard_normal((6, 7))
    print(f"softmax     max abs diff {np.abs(softmax_naive(s) - softmax_forward(s)[0]).max():.1e}")
    g, be = rng.standard_normal(5), rng.standard_normal(5)
    d = np.abs(layer_norm_naive(x, g, be) - layer_norm_forward(x, g, be)[0]).max()
    print(f"layer norm  max abs diff {d:.1e}")
    big = np.array([[1000.0, 999.0, 0.0]])
    with np.errstate(over="ignore", invalid="ignore"):
        unshifted = np.exp(big) / np.exp(big).sum()
    print(f"softmax of {big[0].tolist()}: unshifted {unshifted[0]}, shifted {softmax_forward(big)[0][0]}")


def checks(rng):
    print("\n== gradcheck (float64, every element)")
    x, W, b = rng.standard_normal((2, 5, 3)), rng.standard_normal((4, 3)), rng.standard_normal(4)
    lengths = np.array([5, 3])
    print(gradcheck(lambda x, W, b, n: linear_forward(x, W, b, lengths=n), linear_backward,
                    [x, W, b, lengths], rtol=1e-7, atol=1e-9, names=["x", "W", "b", "lengths"]))
    s = 2 * rng.standard_normal((3, 6))
    print(gradcheck(softmax_forward, softmax_backward, [s], rtol=1e-7, atol=1e-9, names=["x"]))
    x, g, be = rng.standard_normal((2, 5, 4)), rng.standard_normal(4), rng.standard_normal(4)
    print(gradcheck(layer_norm_forward, layer_norm_backward, [x, g, be], rtol=1e-7, atol=1e-9,
                    names=["x", "gamma", "beta"]))
    return x, g, be


def planted_bug(x, g, be):
    print("\n== a classic mistake: layer-norm backward without the term through the variance")

    def bad_backward(dy, cache: LayerNormCache):
        dx, dgamma, dbeta = layer_norm_backward(dy, cache)
        gg = dy * cache.gamma
        dx_wrong = cache.rstd * (gg - gg.mean(axis=-1, keepdims=True))   # forgot - xhat mean(g xhat)
        return dx_wrong, dgamma, dbeta
    print(gradcheck(layer_norm_forward, bad_backward, [x, g, be], rtol=1e-7, atol=1e-9,
                    names=["x", "gamma", "beta"]))


def timing(rng, N=2000, D=256, n_out=256):
    print(f"\n== timing, one thread, best of 20 (naive: best of 3 on 20 rows, scaled to N)"
          f" N = {N} rows, D = {D}, O = {n_out}")
    x, W, b = rng.standard_normal((N, D)), rng.standard_normal((n_out, D)), rng.standard_normal(n_out)
    g, be = rng.standard_normal(D), rng.standard_normal(D)
    rows = 20
    for name, naive, fast in [
        ("linear", lambda: linear_naive(x[:rows], W, b), lambda: linear_forward(x, W, b)),
        ("softmax", lambda: softmax_naive(x[:rows]), lambda: softmax_forward(x)),
        ("layer norm", lambda: layer_norm_naive(x[:rows], g, be), lambda: layer_norm_forward(x, g, be)),
    ]:
        tn = best_of(naive, reps=3) * N / rows
        tf = best_of(fast, reps=20)
        print(f"{name:<11} naive loops {tn * 1e3:9.1f} ms   vectorised {tf * 1e3:7.2f} ms"
              f"   ratio {tn / tf:8.0f}x")
    y, cache = layer_norm_forward(x, g, be)
    dy = rng.standard_normal(y.shape)
    print(f"layer norm  forward {best_of(lambda: layer_norm_forward(x, g, be)) * 1e3:.2f} ms, "
          f"backward {best_of(lambda: layer_norm_backward(dy, cache)) * 1e3:.2f} ms")


if __name__ == "__main__":
    rng = np.random.default_rng(0)
    agreement(rng)
    planted_bug(*checks(rng))
    timing(rng)
