"""Numba kernel for Kaldi's per-frame processing before the DFT (DC removal, pre-emphasis, window).

NumPy twin (same arguments, same results, float64 1e-12 relative):
``scratchasr.features.kaldi._frame_prep_numpy``. Equations: docs/equations/features.md
[features:frames-snip] [features:dc] [features:preemph] and the window tags
([features:window-povey] by default).

Why a kernel: the DFT runs in float64 even for float32 input (a float32 FFT's rounding, about
``eps_32 * ||x_t||`` per bin, swamps bins 1e9 below a frame's loudest: 3.5e-3 in the log on real
speech; docs/equations/features.md, "Precision"). Three NumPy passes that cast into the float64
DFT buffer cost more than the float64 FFT itself; this one pass reads each sample of the 1-D
signal (contiguous, so the loops vectorise) and writes the windowed float64 frame.

The wrapper (``scratchasr.features.kaldi``) validates and allocates; this only loops.
"""

from __future__ import annotations

import numpy as np

from ._njit import njit


@njit
def kaldi_frame_prep_kernel(signal, first, shift, preemph, remove_dc, window, buf):
    """Fill ``buf[t, :L] = window * preemph(x_t - mean(x_t))`` for ``t < buf.shape[0]``.

    Twin: ``scratchasr.features.kaldi._frame_prep_numpy``.
    signal (N,) float32 or float64, contiguous; frame t is ``signal[first + t*shift : ... + L]``
    with ``L = window.shape[0]``; preemph float; remove_dc bool; window (L,) float64;
    buf (n, P) float64 with P >= L: columns ``L..P-1`` are left as they are (the zero padding).
    Arithmetic in float64 (the explicit casts keep it so under NUMBA_DISABLE_JIT too).
    """
    n = buf.shape[0]
    L = window.shape[0]
    c0 = 1.0 - preemph
    for t in range(n):
        o = first + t * shift
        x = signal[o:o + L]                                          # frame t (view) [features:frames-snip]
        row = buf[t]                                                 # (P,) view: lets the loops vectorise
        m = 0.0
        if remove_dc:
            for j in range(L):
                m += np.float64(x[j])
            m /= L                                                   # frame mean [features:dc]
        # Removing m before pre-emphasis equals removing (1 - k) m after it, for every sample
        # (n >= 1: (x_n - m) - k (x_{n-1} - m); n = 0: (1 - k)(x_0 - m)); exact up to float64 rounding.
        c = c0 * m                                                   # [features:dc]
        row[0] = (c0 * np.float64(x[0]) - c) * window[0]             # Kaldi: x[0] -= k x[0]
        for j in range(1, L):
            xj = np.float64(x[j]) - preemph * np.float64(x[j - 1])   # x[n] - k x[n-1] [features:preemph]
            row[j] = (xj - c) * window[j]                            # minus (1 - k) m, windowed
