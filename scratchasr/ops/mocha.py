"""Monotonic attention and monotonic chunkwise attention (MoChA): expected alignments and chunk weights.

References: Raffel, Luong, Liu, Weiss & Eck 2017, "Online and linear-time attention by enforcing
monotonic alignments" (ICML, arXiv:1704.00784): expected alignment, its recursive and closed forms;
Chiu & Raffel 2018, "Monotonic chunkwise attention" (ICLR, arXiv:1712.05382) and the
authors' notebook craffel/mocha Demo.ipynb. Equations and hand-derived backward passes:
docs/equations/mocha.md; walkthrough: docs/walkthroughs/mocha.md.

One decoder step ``i`` is computed per call. Row ``b`` has ``lengths[b]`` valid frames; padded
frames give 0 in every output and receive exactly 0 gradient (NaN written there never leaks).
All arithmetic is in float64 (the recursion multiplies many probabilities); outputs come back in
the dtype of the inputs.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

import numpy as np

from .._backend import dispatch, resolve_backend
from .._validate import choice, float_array, int_array, length_mask, lengths_array, positive_int, same_dtype
from ..kernels import mocha as _km

__all__ = ["monotonic_attention_forward", "monotonic_attention_backward", "MonotonicAttentionCache",
           "mocha_chunk_forward", "mocha_chunk_backward", "MochaChunkCache", "hard_monotonic_attention",
           "DENOM_FLOOR"]

DENOM_FLOOR = 1e-10
"""Lower clip of the cumulative-product denominator in the parallel form (TF, j-min/MoChA-pytorch#4)."""


# ----------------------------------------------------------------------------- NumPy twins (kernels/mocha.py)

def _recursive_forward_numpy(p, alpha_prev, lengths, alpha, q):
    """Twin of ``kernels.mocha.monotonic_recursive_forward_kernel``: fills alpha, q (B, T)."""
    B, T = p.shape
    valid = length_mask(lengths, T)  # (B, T)
    # BEGIN ASSIGNMENT A6 points=3
    carry = np.zeros(B)  # (B,) mass that walked past frame j-1 without stopping
    for j in range(T):
        qj = np.where(valid[:, j], carry + alpha_prev[:, j], 0.0)  # (B,) [mocha:q-rec]
        q[:, j] = qj
        alpha[:, j] = p[:, j] * qj  # [mocha:alpha-rec]
        carry = (1.0 - p[:, j]) * qj
    # END ASSIGNMENT


def _recursive_backward_numpy(dalpha, p, q, lengths, dp, dalpha_prev):
    """Twin of ``kernels.mocha.monotonic_recursive_backward_kernel``: fills dp, dalpha_prev (B, T)."""
    B, T = p.shape
    valid = length_mask(lengths, T)
    # BEGIN ASSIGNMENT A6 points=3
    g_next = np.zeros(B)  # (B,) dL/dq_{j+1}; zero past the last valid frame
    for j in range(T - 1, -1, -1):
        v = valid[:, j]
        dp[:, j] = np.where(v, q[:, j] * (dalpha[:, j] - g_next), 0.0)  # [mocha:dp-rec]
        g = np.where(v, p[:, j] * dalpha[:, j] + (1.0 - p[:, j]) * g_next, 0.0)  # [mocha:dq-rec]
        dalpha_prev[:, j] = g
        g_next = g
    # END ASSIGNMENT


def _windows(x, w, fill):
    """(B, T) -> (B, T, w): row k holds x[k-w+1 .. k], ``fill`` before the first frame."""
    pad = np.pad(x, ((0, 0), (w - 1, 0)), constant_values=fill)
    return np.lib.stride_tricks.sliding_window_view(pad, w, axis=1)


def _scatter_windows(G, T):
    """Transpose of ``_windows``: out[j] = sum over (k, i) with k - w + 1 + i = j of G[k, i]."""
    B, _, w = G.shape
    out = np.zeros((B, T))
    for i in range(w):
        o = w - 1 - i  # chunk k covers frame j = k - o at slot i
        out[:, :T - o] += G[:, o:, i]
    return out


def _chunk_forward_numpy(alpha, u, lengths, w, beta, S):
    """Twin of ``kernels.mocha.mocha_chunk_forward_kernel``: fills beta (B, T) and S (B, T, w)."""
    B, T = alpha.shape
    valid = length_mask(lengths, T)
    # BEGIN ASSIGNMENT A6 points=2
    uw = _windows(u, w, -np.inf)  # (B, T, w) energies of the chunk ending at k
    m = uw.max(axis=2, keepdims=True)  # (B, T, 1) [mocha:chunk-max]
    ex = np.exp(uw - m)  # every exponent <= 0; exp(-inf) = 0 before the first frame
    S[:] = np.where(valid[:, :, None], ex / ex.sum(axis=2, keepdims=True), 0.0)  # [mocha:chunk-softmax]
    beta[:] = _scatter_windows(alpha[:, :, None] * S, T)  # [mocha:beta]
    # END ASSIGNMENT


def _chunk_backward_numpy(dbeta, alpha, S, beta, lengths, w, dalpha, du):
    """Twin of ``kernels.mocha.mocha_chunk_backward_kernel``: fills dalpha, du (B, T)."""
    B, T = alpha.shape
    valid = length_mask(lengths, T)
    # BEGIN ASSIGNMENT A6 points=2
    dbw = _windows(np.where(valid, dbeta, 0.0), w, 0.0)  # (B, T, w)
    da = np.where(valid, np.sum(S * dbw, axis=2), 0.0)  # [mocha:dalpha-chunk]
    dalpha[:] = da
    du[:] = np.where(valid, beta * dbeta - _scatter_windows(alpha[:, :, None] * S * da[:, :, None], T),
                     0.0)  # [mocha:du-chunk]
    # END ASSIGNMENT


def _prepare(name_a, a, name_b, b, lengths):
    float_array(name_a, a, ndim=2)
    B, T = a.shape
    float_array(name_b, b, shape=(B, T))
    dtype = same_dtype(**{name_a: a, name_b: b})
    lengths = lengths_array("lengths", lengths, B, T)
    valid = length_mask(lengths, T)
    # Padding is replaced by 0 before any arithmetic, so NaN or inf there cannot leak.
    a64 = np.ascontiguousarray(np.where(valid, a, 0.0), dtype=np.float64)
    b64 = np.ascontiguousarray(np.where(valid, b, 0.0), dtype=np.float64)
    return a64, b64, lengths, valid, dtype


# ----------------------------------------------------------------------------- monotonic attention

class MonotonicAttentionCache(NamedTuple):
    mode: str  # "recursive" or "parallel"
    p: np.ndarray  # (B, T) float64 selection probabilities, 0 at padding
    alpha_prev: np.ndarray  # (B, T) float64 previous alignment, 0 at padding
    lengths: np.ndarray  # (B,) int64
    valid: np.ndarray  # (B, T) bool
    q: Optional[np.ndarray]  # (B, T) float64 reach probabilities (recursive), else None
    cp: Optional[np.ndarray]  # (B, T) float64 safe exclusive cumprod of 1 - p (parallel), else None
    S: Optional[np.ndarray]  # (B, T) float64 cumsum of alpha_prev / clipped cp (parallel), else None
    dtype: np.dtype  # dtype of the inputs, used for the returned gradients
    backend: str  # resolved: "numpy" or "numba" (always "numpy" in parallel mode: no kernel)


def monotonic_attention_forward(p: np.ndarray, alpha_prev: np.ndarray, *, mode: str = "recursive",
                                lengths=None, backend: Optional[str] = None
                                ) -> Tuple[np.ndarray, MonotonicAttentionCache]:
    """Expected monotonic alignment of one output step (Raffel et al. 2017).

    p (B, T) selection probabilities sigma(e_ij) in [0, 1]; alpha_prev (B, T) the previous step's
    alignment (one-hot on frame 0 for the first step); lengths (B,) valid frames (default all).
    -> alpha (B, T), cache. ``alpha_j = p_j sum_{k<=j} alpha_prev_k prod_{l=k}^{j-1} (1 - p_l)``
    [mocha:alpha-sum]; ``sum_j alpha_j <= 1``, the missing mass means "attend to nothing", and it is
    NOT renormalised. ``mode="recursive"`` runs the exact O(T) recursion [mocha:q-rec]
    [mocha:alpha-rec] (Numba kernel unless ``backend="numpy"``); ``mode="parallel"`` the
    cumulative-product closed form [mocha:safe-cumprod] [mocha:parallel], which loses accuracy when
    the cumulative product drops below ``DENOM_FLOOR`` (p near 1, long memories); it has no Numba
    kernel, so ``backend="numba"`` is an error there.
    """
    choice("mode", mode, ("recursive", "parallel"))
    backend = resolve_backend(backend, has_kernel=mode == "recursive")
    p64, a64, lengths, valid, dtype = _prepare("p", p, "alpha_prev", alpha_prev, lengths)
    B, T = p64.shape
    if mode == "recursive":
        alpha, q = np.empty((B, T)), np.empty((B, T))
        fwd = dispatch(backend, _recursive_forward_numpy, _km.monotonic_recursive_forward_kernel)
        fwd(p64, a64, lengths, alpha, q)
        cache = MonotonicAttentionCache(mode, p64, a64, lengths, valid, q, None, None, dtype, backend)
        return alpha.astype(dtype, copy=False), cache
    # BEGIN ASSIGNMENT A6 points=2
    tiny = np.finfo(np.float64).tiny
    log_x = np.log(np.clip(1.0 - p64, tiny, 1.0))  # (B, T) [mocha:safe-cumprod]
    log_cp = np.concatenate([np.zeros((B, 1)), np.cumsum(log_x, axis=1)[:, :-1]], axis=1)  # exclusive
    cp = np.exp(log_cp)  # (B, T) prod_{l<j} (1 - p_l)
    S = np.cumsum(a64 / np.clip(cp, DENOM_FLOOR, 1.0), axis=1)  # (B, T)
    alpha = np.where(valid, p64 * cp * S, 0.0)  # [mocha:parallel]
    # END ASSIGNMENT
    cache = MonotonicAttentionCache(mode, p64, a64, lengths, valid, None, cp, S, dtype, backend)
    return alpha.astype(dtype, copy=False), cache


def monotonic_attention_backward(dalpha: np.ndarray, cache: MonotonicAttentionCache
                                 ) -> Tuple[np.ndarray, np.ndarray]:
    """dalpha (B, T) -> dp (B, T), dalpha_prev (B, T); zero at padded frames.

    Recursive mode: the reverse recursion [mocha:dq-rec] [mocha:dp-rec]. Parallel mode: the chain
    rule through cumsum, clip and safe cumprod [mocha:dparallel].
    """
    p, a, valid, cp, S, dtype = cache.p, cache.alpha_prev, cache.valid, cache.cp, cache.S, cache.dtype
    B, T = p.shape
    float_array("dalpha", dalpha, shape=(B, T))
    da = np.ascontiguousarray(np.where(valid, dalpha, 0.0), dtype=np.float64)
    if cache.mode == "recursive":
        dp, dalpha_prev = np.empty((B, T)), np.empty((B, T))
        bwd = dispatch(cache.backend, _recursive_backward_numpy, _km.monotonic_recursive_backward_kernel)
        bwd(da, p, cache.q, cache.lengths, dp, dalpha_prev)
        return dp.astype(dtype, copy=False), dalpha_prev.astype(dtype, copy=False)
    # Parallel form: alpha = p * cp * S, S = cumsum(a / d), d = clip(cp, floor, 1),
    # cp = exp(exclusive-cumsum(log x)), x = 1 - p.
    tiny = np.finfo(np.float64).tiny
    d = np.clip(cp, DENOM_FLOOR, 1.0)
    dp = da * cp * S  # direct path through p_j [mocha:dparallel]
    dS = da * p * cp
    dr = np.cumsum(dS[:, ::-1], axis=1)[:, ::-1]  # transpose of cumsum: reverse cumsum
    dalpha_prev = dr / d
    dcp = da * p * S - np.where(cp >= DENOM_FLOOR, dr * a / (d * d), 0.0)  # clip passes where unclipped
    dlog_cp = dcp * cp
    rev = np.cumsum(dlog_cp[:, ::-1], axis=1)[:, ::-1]  # inclusive reverse cumsum
    dlog_x = np.concatenate([rev[:, 1:], np.zeros((B, 1))], axis=1)  # transpose of the exclusive cumsum
    x = 1.0 - p
    dp = dp - np.where(x >= tiny, dlog_x / np.maximum(x, tiny), 0.0)  # d log x / dp = -1 / x
    dp, dalpha_prev = np.where(valid, dp, 0.0), np.where(valid, dalpha_prev, 0.0)
    return dp.astype(dtype, copy=False), dalpha_prev.astype(dtype, copy=False)


# ----------------------------------------------------------------------------- chunkwise attention

class MochaChunkCache(NamedTuple):
    alpha: np.ndarray  # (B, T) float64 monotonic alignment, 0 at padding
    S: np.ndarray  # (B, T, w) float64 softmax weights inside the chunk ending at each frame
    beta: np.ndarray  # (B, T) float64 chunkwise weights
    lengths: np.ndarray  # (B,) int64
    valid: np.ndarray  # (B, T) bool
    chunk_size: int  # w
    dtype: np.dtype
    backend: str  # resolved: "numpy" or "numba"


def mocha_chunk_forward(alpha: np.ndarray, u: np.ndarray, *, chunk_size: int, lengths=None,
                        backend: Optional[str] = None) -> Tuple[np.ndarray, MochaChunkCache]:
    """Chunkwise attention weights of one output step (Chiu & Raffel 2018).

    alpha (B, T) monotonic alignment; u (B, T) chunk energies; chunk_size w >= 1; lengths (B,).
    -> beta (B, T), cache, with ``beta_j = sum_{k=j}^{j+w-1} alpha_k exp(u_j) / sum_{l=k-w+1}^{k} exp(u_l)``
    [mocha:beta-sum] computed chunk by chunk with each chunk's own maximum subtracted
    [mocha:chunk-max] [mocha:chunk-softmax] [mocha:beta]: exact for any energy range, no 1e-5 floor.
    Chunks are truncated at the first frame. ``chunk_size=1`` returns alpha exactly.
    """
    w = positive_int("chunk_size", chunk_size)
    backend = resolve_backend(backend)
    a64, u64, lengths, valid, dtype = _prepare("alpha", alpha, "u", u, lengths)
    B, T = a64.shape
    beta, S = np.empty((B, T)), np.empty((B, T, w))
    dispatch(backend, _chunk_forward_numpy, _km.mocha_chunk_forward_kernel)(a64, u64, lengths, w, beta, S)
    return beta.astype(dtype, copy=False), MochaChunkCache(a64, S, beta, lengths, valid, w, dtype, backend)


def mocha_chunk_backward(dbeta: np.ndarray, cache: MochaChunkCache) -> Tuple[np.ndarray, np.ndarray]:
    """dbeta (B, T) -> dalpha (B, T), du (B, T); zero at padded frames.

    [mocha:dalpha-chunk] [mocha:du-chunk]
    """
    B, T = cache.alpha.shape
    float_array("dbeta", dbeta, shape=(B, T))
    db = np.ascontiguousarray(np.where(cache.valid, dbeta, 0.0), dtype=np.float64)
    dalpha, du = np.empty((B, T)), np.empty((B, T))
    bwd = dispatch(cache.backend, _chunk_backward_numpy, _km.mocha_chunk_backward_kernel)
    bwd(db, cache.alpha, cache.S, cache.beta, cache.lengths, cache.chunk_size, dalpha, du)
    return dalpha.astype(cache.dtype, copy=False), du.astype(cache.dtype, copy=False)


# ----------------------------------------------------------------------------- test time

def hard_monotonic_attention(e: np.ndarray, u: np.ndarray, t_prev, *, chunk_size: int, lengths=None
                             ) -> Tuple[np.ndarray, np.ndarray]:
    """Test-time hard MoChA for one output step (no gradient).

    e (B, T) monotonic energies; u (B, T) chunk energies; t_prev (B,) int the previously attended
    frame (0 before the first step; -1 once attention has stopped); chunk_size w.
    -> beta (B, T) attention weights, t (B,) int64. Scanning from t_prev, attend the first frame j
    with p_j = sigma(e_j) >= 0.5, i.e. e_j >= 0 [mocha:hard]; beta is the softmax of u over the w
    frames ending at j [mocha:hard-chunk]. When no frame fires, beta = 0 and t = -1 (attend nothing,
    now and at every later step): the p in {0, 1} limit of the expected alignment.
    """
    w = positive_int("chunk_size", chunk_size)
    float_array("e", e, ndim=2)
    B, T = e.shape
    float_array("u", u, shape=(B, T))
    t_prev = int_array("t_prev", t_prev, shape=(B,))
    lengths = lengths_array("lengths", lengths, B, T)
    if np.any((t_prev < -1) | (t_prev >= np.maximum(lengths, 1))):
        raise ValueError(f"t_prev: expected -1 or a frame index below lengths, got {t_prev}")
    beta = np.zeros((B, T), dtype=e.dtype)
    t = np.full(B, -1, dtype=np.int64)
    # BEGIN ASSIGNMENT A6 points=2
    for b in range(B):
        if t_prev[b] < 0:
            continue
        fired = np.flatnonzero(e[b, t_prev[b]:lengths[b]] >= 0)  # [mocha:hard]
        if fired.size == 0:
            continue
        j = t_prev[b] + int(fired[0])
        lo = max(0, j - w + 1)
        ex = np.exp(u[b, lo:j + 1] - u[b, lo:j + 1].max())  # [mocha:hard-chunk]
        beta[b, lo:j + 1] = ex / ex.sum()
        t[b] = j
    # END ASSIGNMENT
    return beta, t
