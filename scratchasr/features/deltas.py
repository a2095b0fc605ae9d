"""Kaldi's ``add-deltas``: append first-, second-, ... order regression coefficients.

First order with window ``W`` (default 2): ``d_t = sum_{n=1..W} n (c_{t+n} - c_{t-n}) / (2 sum n^2)``,
i.e. the filter ``[-W .. W] / (2 sum n^2)`` (``/10`` for ``W = 2``). Order ``i`` uses the filter of
order ``i-1`` convolved once more with that one (Kaldi's ``DeltaFeatures`` builds ``scales_`` this
way), applied to the *original* features with frames beyond the edges replaced by the first/last
frame. Order 2 is therefore not "delta of the padded delta" but one 9-tap filter on ``c``.

Reference: Kaldi ``src/feat/feature-functions.cc`` (``DeltaFeatures``); S. Furui, IEEE TASSP 34(1), 1986.
"""

from __future__ import annotations

import numpy as np

from .._validate import float_array, positive_int


def delta_filters(order: int, window: int) -> list[np.ndarray]:
    """Kaldi's ``scales_``: filters ``[f_0 = [1], f_1, ..., f_order]``, ``f_i`` of length ``2 i W + 1``."""
    # BEGIN ASSIGNMENT A1 points=1
    n = np.arange(-window, window + 1, dtype=np.float64)
    first = n / np.sum(n * n)              # [-W..W] / (2 sum_{n=1..W} n^2) [features:deltas]
    filters = [np.ones(1)]
    for _ in range(order):
        # Kaldi: cur[j + k] += j * prev[k] / normaliser -- a full convolution of the two filters.
        filters.append(np.convolve(filters[-1], first))
    return filters
    # END ASSIGNMENT


def add_deltas(feats: np.ndarray, *, order: int = 2, window: int = 2) -> np.ndarray:
    """``(n_frames, n_bins) -> (n_frames, n_bins * (order + 1))``: ``[c, delta c, delta^2 c, ...]``.

    Output dtype follows the input (float32 or float64).
    """
    feats = float_array("feats", feats, ndim=2, finite=True)
    order = positive_int("order", order, minimum=0)
    window = positive_int("window", window)
    T, D = feats.shape
    if T == 0:
        return np.zeros((0, D * (order + 1)), dtype=feats.dtype)
    # BEGIN ASSIGNMENT A1 points=1
    filters = delta_filters(order, window)
    P = order * window                                        # widest half-width
    padded = np.pad(feats.astype(np.float64), ((P, P), (0, 0)), mode="edge")   # replicate edge frames
    out = np.empty((T, D * (order + 1)), dtype=feats.dtype)
    for i, f in enumerate(filters):
        h = (f.size - 1) // 2                                 # this filter's half-width
        acc = np.zeros((T, D))
        for j in range(-h, h + 1):
            if f[j + h] != 0.0:
                acc += f[j + h] * padded[P + j: P + j + T]    # sum_j f[j] c_{t+j} [features:deltas]
        out[:, i * D:(i + 1) * D] = acc
    # END ASSIGNMENT
    return out
