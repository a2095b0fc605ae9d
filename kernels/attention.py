"""Fused row softmax and its backward for scaled dot-product attention.

NumPy spreads ``softmax(s)`` over five passes (max, subtract, exp, sum, divide) and its backward over
three (row dot, subtract, multiply), each over the whole ``(B, H, Tq, Tk)`` score array; these kernels
make one pass per row while the row is in L1. The GEMMs (``q k^T``, ``p v`` and the four of the
backward) stay in BLAS.

NumPy twins (same arguments, same results): ``scratchasr.ops.attention._softmax_rows_numpy`` and
``scratchasr.ops.attention._softmax_rows_backward_numpy``. Equation tags: docs/equations/attention.md
[attn:softmax] [attn:dsoftmax] [attn:dscores].

``exp`` is written out (``_exp_nonpos``) so that LLVM vectorises the row loop: a call to the C
library's scalar ``exp`` cannot be vectorised without SVML.
"""

from __future__ import annotations

import math

import numpy as np
from numba import types
from numba.extending import overload

from ._njit import FASTMATH, njit

_LN2_HI = 6.93147180369123816490e-01  # fdlibm's split of ln 2: k * _LN2_HI is exact for |k| < 2^11
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e+00


@njit(inline="always", error_model="numpy")
def _exp_nonpos(x):
    """exp(x) for x <= 0 (scores minus their row maximum) in float64 arithmetic, branch-free; a few ulp.

    x = -(k ln2) + r, |r| <= ln2 / 2 (Cody-Waite), exp(r) by its Taylor series to r^13, times 2^-k
    built from k's bits (exact powers of two). exp(x) = 0 below -745 (float64 underflow)."""
    y = -746.0 if x < -746.0 else x  # -inf -> -746; a NaN stays NaN
    k = np.floor(-y * _INV_LN2 + 0.5)  # 0 .. 1077
    r = (y + k * _LN2_HI) + k * _LN2_LO
    p = 1.0 / 6227020800  # Horner from 1/13!
    p = 1.0 / 479001600 + r * p
    p = 1.0 / 39916800 + r * p
    p = 1.0 / 3628800 + r * p
    p = 1.0 / 362880 + r * p
    p = 1.0 / 40320 + r * p
    p = 1.0 / 5040 + r * p
    p = 1.0 / 720 + r * p
    p = 1.0 / 120 + r * p
    p = 1.0 / 24 + r * p
    p = 1.0 / 6 + r * p
    p = 0.5 + r * p
    p = 1.0 + r * (1.0 + r * p)  # exp(r)
    ki = int(k) if k < 2048.0 else 0  # 0 for a NaN, which p carries
    f = (0.5 if ki & 1 else 1.0) * (0.25 if ki & 2 else 1.0) * (0.0625 if ki & 4 else 1.0)
    f *= (2.0 ** -8 if ki & 8 else 1.0) * (2.0 ** -16 if ki & 16 else 1.0)
    f *= (2.0 ** -32 if ki & 32 else 1.0) * (2.0 ** -64 if ki & 64 else 1.0)
    f *= (2.0 ** -128 if ki & 128 else 1.0) * (2.0 ** -256 if ki & 256 else 1.0)
    f *= 2.0 ** -512 if ki & 512 else 1.0
    p *= f
    g = 2.0 ** -512 if ki & 1024 else 1.0  # 2^-1024 as two factors, applied last, so that no partial
    p = (p * g) * g  # product underflows early
    return 0.0 if x < -745.2 else p


_F32 = np.float32
_LN2_HI32 = _F32(0.693145751953125)  # the float32 split: k * _LN2_HI32 exact for |k| < 2^8
_LN2_LO32 = _F32(1.428606765330187045e-06)


@njit(inline="always", error_model="numpy")
def _exp_nonpos32(x):
    """``_exp_nonpos`` in float32 arithmetic (twice the SIMD lanes): Taylor to r^7; 0 below -104."""
    y = _F32(-104) if x < _F32(-104) else x
    k = np.floor(-y * _F32(_INV_LN2) + _F32(0.5))  # 0 .. 150
    r = (y + k * _LN2_HI32) + k * _LN2_LO32
    p = _F32(1 / 5040)
    p = _F32(1 / 720) + r * p
    p = _F32(1 / 120) + r * p
    p = _F32(1 / 24) + r * p
    p = _F32(1 / 6) + r * p
    p = _F32(0.5) + r * p
    p = _F32(1) + r * (_F32(1) + r * p)
    ki = int(k) if k < _F32(256) else 0
    f = (_F32(0.5) if ki & 1 else _F32(1)) * (_F32(0.25) if ki & 2 else _F32(1))
    f *= (_F32(0.0625) if ki & 4 else _F32(1)) * (_F32(2.0 ** -8) if ki & 8 else _F32(1))
    f *= (_F32(2.0 ** -16) if ki & 16 else _F32(1)) * (_F32(2.0 ** -32) if ki & 32 else _F32(1))
    f *= _F32(2.0 ** -64) if ki & 64 else _F32(1)
    p *= f
    g = _F32(2.0 ** -64) if ki & 128 else _F32(1)  # 2^-128 as two factors, applied last
    p = (p * g) * g
    return _F32(0) if x < _F32(-103.9) else p


def _exp_like(x):
    """exp(x <= 0) in the precision of ``x`` (resolved at compile time by the overload below; this body
    runs only with NUMBA_DISABLE_JIT)."""
    return _exp_nonpos32(x) if isinstance(x, np.float32) else _exp_nonpos(x)


@overload(_exp_like, jit_options=dict(error_model="numpy", fastmath=set(FASTMATH)))
def _exp_like_overload(x):
    if isinstance(x, types.Float) and x.bitwidth == 32:
        return lambda x: _exp_nonpos32(x)
    return lambda x: _exp_nonpos(x)


@njit(inline="always", error_model="numpy")
def _row_max(x, ninf):
    """max of a 1-D array (``ninf`` if empty) in eight independent chains, which the CPU overlaps (a
    single max chain cannot be vectorised without assuming no NaN). A NaN is skipped (not > m)."""
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = ninf
    n = x.shape[0]
    j = 0
    while j + 8 <= n:
        m0 = x[j] if x[j] > m0 else m0
        m1 = x[j + 1] if x[j + 1] > m1 else m1
        m2 = x[j + 2] if x[j + 2] > m2 else m2
        m3 = x[j + 3] if x[j + 3] > m3 else m3
        m4 = x[j + 4] if x[j + 4] > m4 else m4
        m5 = x[j + 5] if x[j + 5] > m5 else m5
        m6 = x[j + 6] if x[j + 6] > m6 else m6
        m7 = x[j + 7] if x[j + 7] > m7 else m7
        j += 8
    while j < n:
        m0 = x[j] if x[j] > m0 else m0
        j += 1
    m0 = m1 if m1 > m0 else m0
    m2 = m3 if m3 > m2 else m2
    m4 = m5 if m5 > m4 else m4
    m6 = m7 if m7 > m6 else m6
    m0 = m2 if m2 > m0 else m0
    m4 = m6 if m6 > m4 else m4
    return m4 if m4 > m0 else m0


@njit(error_model="numpy")
def softmax_rows_kernel(s, mask):
    """Row softmax of the scores, in place. Twin: ``scratchasr.ops.attention._softmax_rows_numpy``.

    s (R, Tk) scores, overwritten with p: the softmax over the allowed keys, 0 at the others and in rows
    with no allowed key [attn:softmax]; mask (R, Tk) bool (True = may attend) or None. In place, so
    that each loop reads and writes one array (two arrays that might overlap would stop LLVM from
    vectorising). Returns False (s partly overwritten) if an allowed score is +inf or NaN, for the
    caller's exact fallback.
    """
    R, Tk = s.shape
    zero = np.zeros(1, s.dtype)[0]  # constants in the scores' dtype, so that float32 stays float32
    one = np.ones(1, s.dtype)[0]
    ninf = np.full(1, -np.inf, s.dtype)[0]
    for i in range(R):
        si = s[i]
        if mask is not None:
            mi = mask[i]
            for j in range(Tk):
                si[j] = si[j] if mi[j] else ninf  # masked scores are never used (a NaN there stays out)
        m = _row_max(si, ninf)
        if m == ninf:  # no allowed key (or every allowed score is -inf): a zero row
            si[:] = zero
            continue
        if not math.isfinite(m):
            return False
        z = zero
        for j in range(Tk):
            e = _exp_like(si[j] - m)  # exp(-inf) = 0 at masked keys
            si[j] = e
            z += e
        if not math.isfinite(z):  # a NaN score
            return False
        inv = one / z
        for j in range(Tk):
            si[j] *= inv
    return True


@njit(error_model="numpy")
def softmax_rows_backward_kernel(dp, p, scale):
    """Backward of ``softmax_rows_kernel`` times ``scale``, in place. Twin:
    ``scratchasr.ops.attention._softmax_rows_backward_numpy``.

    dp (R, Tk), overwritten with ds = scale * p * (dp - sum_j dp_j p_j) [attn:dsoftmax] [attn:dscores],
    exactly 0 where p = 0 (masked keys), whatever dp holds there (a NaN from a value row the forward
    never read stays out); p (R, Tk)."""
    R, Tk = dp.shape
    zero = np.zeros(1, dp.dtype)[0]
    for i in range(R):
        di, pi = dp[i], p[i]
        acc = zero
        for j in range(Tk):
            acc += di[j] * pi[j] if pi[j] != zero else zero
        for j in range(Tk):
            di[j] = (pi[j] * (di[j] - acc)) * scale if pi[j] != zero else zero
