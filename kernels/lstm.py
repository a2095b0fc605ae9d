"""Fused LSTM cell kernels: gate nonlinearities, cell update and their backward in one pass.

The GEMMs (input projection for all steps, ``h @ W_hh^T`` per step) stay in BLAS; what is left
per step is element-wise work over ``(B, 4H)`` that NumPy would spread over ~15 temporaries.
These kernels do it in one sweep over memory.

NumPy twins (same arguments, same results): ``scratchasr.ops.lstm._cell_forward_numpy`` and
``scratchasr.ops.lstm._cell_backward_numpy``. Equation tags: docs/equations/lstm.md
[lstm:gates] [lstm:cell] [lstm:hidden] [lstm:mask] [lstm:dcell] [lstm:dgates] [lstm:dmask].

Convention: gate blocks are stacked i, f, g, o along the last axis (columns ``k*H:(k+1)*H``).
A row with ``valid[b] == 0`` is a padded step: the state is carried unchanged, the output is 0,
and its pre-activation is never read (so NaN there cannot leak).
"""

from __future__ import annotations

import math

import numpy as np

from numba import types
from numba.extending import overload

from ._njit import FASTMATH, njit


@njit(error_model="numpy")
def lstm_cell_forward_kernel(t, h_prev, c_prev, valid, gates, h, c, tanh_c, y):
    """One LSTM step for a batch. Twin: ``scratchasr.ops.lstm._cell_forward_numpy``.

    t (B, 4H) = tanh(s * a) with a the pre-activations [lstm:preact] and s = 1/2 on the sigmoid
    blocks i, f, o and 1 on g: the caller evaluates this one tanh with NumPy's SIMD tanh, because
    Numba (without SVML) calls scalar exp/tanh, which cost more than the whole recurrent GEMM.
    Then sigmoid(x) = (1 + tanh(x / 2)) / 2 [lstm:gates]. h_prev, c_prev (B, H); valid (B,) uint8.
    Fills gates (B, 4H) (activated i, f, g, o), h, c, tanh_c (B, H) (carried states) and
    y (B, H) (emitted output, zero at padded rows).
    """
    B = t.shape[0]
    H = h_prev.shape[1]
    # BEGIN ASSIGNMENT A2 points=2
    for b in range(B):  # serial: a per-step prange costs more in thread wake-ups than it saves
        if valid[b]:
            for j in range(H):
                gi = 0.5 + 0.5 * t[b, j]  # [lstm:gates]
                gf = 0.5 + 0.5 * t[b, H + j]
                gg = t[b, 2 * H + j]
                go = 0.5 + 0.5 * t[b, 3 * H + j]
                cc = gf * c_prev[b, j] + gi * gg  # [lstm:cell]
                tc = math.tanh(cc)
                hh = go * tc  # [lstm:hidden]
                gates[b, j] = gi
                gates[b, H + j] = gf
                gates[b, 2 * H + j] = gg
                gates[b, 3 * H + j] = go
                c[b, j] = cc
                tanh_c[b, j] = tc
                h[b, j] = hh
                y[b, j] = hh
        else:
            for j in range(4 * H):
                gates[b, j] = 0.0
            for j in range(H):  # [lstm:mask]
                c[b, j] = c_prev[b, j]
                h[b, j] = h_prev[b, j]
                tanh_c[b, j] = 0.0
                y[b, j] = 0.0
    # END ASSIGNMENT


@njit(error_model="numpy")
def lstm_cell_backward_kernel(dy, dh_next, dc_next, gates, c_prev, tanh_c, valid, da, dc_prev, dh_pass):
    """Backward of one LSTM step. Twin: ``scratchasr.ops.lstm._cell_backward_numpy``.

    dy (B, H) gradient of the emitted output; dh_next, dc_next (B, H) gradients flowing into this
    step's carried state from the future; gates (B, 4H), c_prev, tanh_c (B, H) from the forward.
    Fills da (B, 4H) [lstm:dgates], dc_prev (B, H) [lstm:dcell] and dh_pass (B, H): the part of
    dL/dh_prev that bypasses the recurrent GEMM (the carried gradient at padded rows [lstm:dmask]).
    """
    B = dy.shape[0]
    H = dy.shape[1]
    # BEGIN ASSIGNMENT A2 points=2
    for b in range(B):  # serial: a per-step prange costs more in thread wake-ups than it saves
        if valid[b]:
            for j in range(H):
                gi = gates[b, j]
                gf = gates[b, H + j]
                gg = gates[b, 2 * H + j]
                go = gates[b, 3 * H + j]
                tc = tanh_c[b, j]
                dh = dy[b, j] + dh_next[b, j]
                dct = dc_next[b, j] + dh * go * (1.0 - tc * tc)  # [lstm:dcell]
                da[b, j] = dct * gg * gi * (1.0 - gi)  # [lstm:dgates]
                da[b, H + j] = dct * c_prev[b, j] * gf * (1.0 - gf)
                da[b, 2 * H + j] = dct * gi * (1.0 - gg * gg)
                da[b, 3 * H + j] = dh * tc * go * (1.0 - go)
                dc_prev[b, j] = dct * gf
                dh_pass[b, j] = 0.0
        else:
            for j in range(4 * H):
                da[b, j] = 0.0
            for j in range(H):  # [lstm:dmask]
                dc_prev[b, j] = dc_next[b, j]
                dh_pass[b, j] = dh_next[b, j]
    # END ASSIGNMENT


# ----------------------------------------------------------------------------- whole-sequence kernels
# The per-step kernels above leave the recurrent GEMM and the gate tanh to NumPy, i.e. four Python-level
# calls per step. The kernels below run a whole sequence in one call: the recurrent product is the
# register-blocked ``matmul_bt_kernel`` (no per-call packing, unlike a BLAS call on a (B x H) matrix)
# and the five transcendentals per unit use ``_tanh``, written so that LLVM vectorises it (a call to the
# C library's scalar tanh cannot be vectorised without SVML).

_LN2_HI = 6.93147180369123816490e-01  # fdlibm's split of ln 2: k * _LN2_HI is exact for |k| < 2^11
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e+00


@njit(inline="always", error_model="numpy")
def _tanh(x):
    """tanh(x) in float64 arithmetic, branch-free so that loops over it vectorise; a few ulp.

    tanh|x| = -E / (2 + E) with E = expm1(-2|x|) = 2^-k expm1(-r) + (2^-k - 1), 2|x| = k ln2 + r,
    |r| <= ln2 / 2 (Cody-Waite), expm1(-r) by its Taylor series to r^13 (error < 1e-17). k = 0
    keeps full relative accuracy near 0; 2|x| is capped at 40 (tanh = 1 in float64 beyond 19.06);
    NaN propagates. [lstm:gates] [lstm:hidden]
    """
    z = 2.0 * abs(x)
    z = 40.0 if z > 40.0 else z  # a NaN fails the comparison and stays NaN
    k = np.floor(z * _INV_LN2 + 0.5)
    u = (k * _LN2_HI - z) + k * _LN2_LO  # -r
    p = 1.0 / 6227020800  # expm1(u) = u (1 + u/2! (... (1 + u/13)...)), Horner from 1/13!, |u| <= 0.35
    p = 1.0 / 479001600 + u * p
    p = 1.0 / 39916800 + u * p
    p = 1.0 / 3628800 + u * p
    p = 1.0 / 362880 + u * p
    p = 1.0 / 40320 + u * p
    p = 1.0 / 5040 + u * p
    p = 1.0 / 720 + u * p
    p = 1.0 / 120 + u * p
    p = 1.0 / 24 + u * p
    p = 1.0 / 6 + u * p
    p = 0.5 + u * p
    p = u * (1.0 + u * p)
    ki = int(k) if k < 64.0 else 0  # 0 .. 58 (0 for a NaN, which p carries)
    f = (0.5 if ki & 1 else 1.0) * (0.25 if ki & 2 else 1.0) * (0.0625 if ki & 4 else 1.0)
    f *= (2.0 ** -8 if ki & 8 else 1.0) * (2.0 ** -16 if ki & 16 else 1.0)
    f *= 2.0 ** -32 if ki & 32 else 1.0
    e = f * p + (f - 1.0)  # expm1(-2|x|), exact powers of two
    return math.copysign(-e / (2.0 + e), x)


_F32 = np.float32
_LN2_HI32 = _F32(0.693145751953125)  # the float32 split: k * _LN2_HI32 exact for |k| < 2^8
_LN2_LO32 = _F32(1.428606765330187045e-06)


@njit(inline="always", error_model="numpy")
def _tanh32(x):
    """``_tanh`` for float32 in float32 arithmetic (twice the SIMD lanes): Taylor to r^7 (error < 2e-8
    relative), 2|x| capped at 20 (tanh = 1 in float32 beyond 9.01); within 3 ulp of the exact tanh."""
    z = _F32(2) * abs(x)
    z = _F32(20) if z > _F32(20) else z  # a NaN stays NaN
    k = np.floor(z * _F32(_INV_LN2) + _F32(0.5))
    u = (k * _LN2_HI32 - z) + k * _LN2_LO32  # -r
    p = _F32(1 / 5040)  # expm1(u) by Horner from 1/7!, |u| <= 0.35
    p = _F32(1 / 720) + u * p
    p = _F32(1 / 120) + u * p
    p = _F32(1 / 24) + u * p
    p = _F32(1 / 6) + u * p
    p = _F32(0.5) + u * p
    p = u * (_F32(1) + u * p)
    ki = int(k) if k < _F32(64) else 0  # 0 .. 29
    f = (_F32(0.5) if ki & 1 else _F32(1)) * (_F32(0.25) if ki & 2 else _F32(1))
    f *= (_F32(0.0625) if ki & 4 else _F32(1)) * (_F32(2.0 ** -8) if ki & 8 else _F32(1))
    f *= _F32(2.0 ** -16) if ki & 16 else _F32(1)
    e = f * p + (f - _F32(1))  # expm1(-2|x|)
    return math.copysign(-e / (_F32(2) + e), x)


def _tanh_like(x):
    """tanh in the precision of ``x``: ``_tanh32`` for float32, ``_tanh`` otherwise (resolved when a
    kernel is compiled, through the overload below; this body runs only with NUMBA_DISABLE_JIT)."""
    return _tanh32(x) if isinstance(x, np.float32) else _tanh(x)


@overload(_tanh_like, jit_options=dict(error_model="numpy", fastmath=set(FASTMATH)))
def _tanh_like_overload(x):
    if isinstance(x, types.Float) and x.bitwidth == 32:
        return lambda x: _tanh32(x)
    return lambda x: _tanh(x)


@njit(error_model="numpy")
def matmul_bt_kernel(X, M, out):
    """out (B, N) = X (B, K) @ M (N, K)^T, both C-contiguous. Twin: ``np.matmul(X, M.T, out=out)``.

    Blocks of 4 rows of M by 4 rows of X: 16 accumulators whose inner loop over K LLVM vectorises
    (fastmath reassoc), 8 loads per 16 multiply-adds. For the LSTM's (B x H) @ (H x 4H) with B ~ 8 it
    beats a BLAS call, which repacks the whole weight matrix on every call.
    """
    B, K = X.shape
    N = M.shape[0]
    zero = np.zeros(1, X.dtype)[0]  # accumulate in the arrays' dtype, as BLAS does
    j = 0
    while j + 4 <= N:
        b = 0
        while b + 4 <= B:
            s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = zero
            s20 = s21 = s22 = s23 = s30 = s31 = s32 = s33 = zero
            for k in range(K):
                m0, m1, m2, m3 = M[j, k], M[j + 1, k], M[j + 2, k], M[j + 3, k]
                x0, x1, x2, x3 = X[b, k], X[b + 1, k], X[b + 2, k], X[b + 3, k]
                s00 += x0 * m0
                s01 += x0 * m1
                s02 += x0 * m2
                s03 += x0 * m3
                s10 += x1 * m0
                s11 += x1 * m1
                s12 += x1 * m2
                s13 += x1 * m3
                s20 += x2 * m0
                s21 += x2 * m1
                s22 += x2 * m2
                s23 += x2 * m3
                s30 += x3 * m0
                s31 += x3 * m1
                s32 += x3 * m2
                s33 += x3 * m3
            out[b, j], out[b, j + 1], out[b, j + 2], out[b, j + 3] = s00, s01, s02, s03
            out[b + 1, j], out[b + 1, j + 1], out[b + 1, j + 2], out[b + 1, j + 3] = s10, s11, s12, s13
            out[b + 2, j], out[b + 2, j + 1], out[b + 2, j + 2], out[b + 2, j + 3] = s20, s21, s22, s23
            out[b + 3, j], out[b + 3, j + 1], out[b + 3, j + 2], out[b + 3, j + 3] = s30, s31, s32, s33
            b += 4
        while b < B:  # leftover rows of X
            s0 = s1 = s2 = s3 = zero
            for k in range(K):
                xk = X[b, k]
                s0 += xk * M[j, k]
                s1 += xk * M[j + 1, k]
                s2 += xk * M[j + 2, k]
                s3 += xk * M[j + 3, k]
            out[b, j], out[b, j + 1], out[b, j + 2], out[b, j + 3] = s0, s1, s2, s3
            b += 1
        j += 4
    while j < N:  # leftover rows of M
        for b in range(B):
            s = zero
            for k in range(K):
                s += X[b, k] * M[j, k]
            out[b, j] = s
        j += 1


@njit(error_model="numpy")
def lstm_sequence_forward_kernel(gates, bias, W, h0, c0, valid, reverse, hprev, cprev, tanh_c, y, h_n, c_n):
    """A whole LSTM direction in one call. Twin: ``scratchasr.ops.lstm._sequence_forward_numpy``.

    Time-major work arrays (one step's rows are contiguous and consecutive steps adjacent, which the
    hardware prefetcher follows; batch-first (B, T, .) arrays would put every row on its own page).
    gates (T, B, 4H): on entry s * (x W_ih^T) (padded steps never read), overwritten in place with the
    activated gates i, f, g, o (0 at padding): the input projection is read once per step and its
    memory reused, and a loop that reads and writes one array vectorises (two arrays that might
    overlap would not). bias (4H,) = s * b, W (4H, H) = s * W_hh (C-contiguous), s = 1/2 on the sigmoid
    blocks and 1 on g [lstm:gates]; h0, c0 (B, H); valid (B, T) uint8; reverse: steps run
    t = T-1 .. 0 (padding at the end then carries h0, c0 until each sequence's last valid step, which
    is the per-sequence reversal [lstm:reverse]). Fills, per step t in input order: hprev, cprev
    (T, B, H) the state entering it, tanh_c (T, B, H) (0 at padding); y (B, T, H) the output (0 at
    padding); h_n, c_n (B, H) the final states. [lstm:preact] [lstm:cell] [lstm:hidden] [lstm:mask]
    """
    T, B, H4 = gates.shape
    H = H4 // 4
    h = np.empty((B, H), W.dtype)  # the carried state, contiguous for the GEMM
    c = np.empty((B, H), W.dtype)
    h[:, :] = h0
    c[:, :] = c0
    rec = np.empty((B, H4), W.dtype)
    for step in range(T):
        t = T - 1 - step if reverse else step
        hprev[t] = h
        cprev[t] = c
        matmul_bt_kernel(h, W, rec)  # (B, 4H) = s * h_{t-1} W_hh^T [lstm:preact]
        for b in range(B):
            g, tc, yb = gates[t, b], tanh_c[t, b], y[b, t]
            if valid[b, t]:  # three sweeps with few arrays each, so that LLVM vectorises them
                rb, hb, cb = rec[b], h[b], c[b]
                for j in range(H4):
                    g[j] = _tanh_like(g[j] + bias[j] + rb[j])  # tanh(s * a) [lstm:gates]
                for j in range(H):
                    gi = 0.5 + 0.5 * g[j]  # sigmoid(x) = (1 + tanh(x / 2)) / 2
                    gf = 0.5 + 0.5 * g[H + j]
                    go = 0.5 + 0.5 * g[3 * H + j]
                    cb[j] = gf * cb[j] + gi * g[2 * H + j]  # [lstm:cell]
                    g[j], g[H + j], g[3 * H + j] = gi, gf, go
                for j in range(H):
                    tc[j] = _tanh_like(cb[j])
                    hb[j] = g[3 * H + j] * tc[j]  # [lstm:hidden]
                for j in range(H):
                    yb[j] = hb[j]
            else:  # [lstm:mask] the state is carried unchanged
                g[:] = 0.0
                tc[:] = 0.0
                yb[:] = 0.0
    h_n[:, :] = h
    c_n[:, :] = c


@njit(error_model="numpy")
def lstm_sequence_backward_kernel(dy, dh_n, dc_n, W_T, gates, cprev, tanh_c, valid, reverse, da, dh0, dc0):
    """Backward through time of one direction. Twin: ``scratchasr.ops.lstm._sequence_backward_numpy``.

    dy (B, T, H) gradient of the outputs (read only at valid steps), dh_n, dc_n (B, H) of the final
    states, W_T (H, 4H) = W_hh^T C-contiguous, gates (T, B, 4H), cprev, tanh_c (T, B, H), valid (B, T)
    from the forward; steps run in the opposite order of the forward's. Fills da (T, B, 4H) (0 at
    padding) [lstm:dgates], dh0, dc0 (B, H). [lstm:dcell] [lstm:dhprev] [lstm:dmask]
    """
    T, B, H4 = gates.shape
    H = H4 // 4
    dh = np.empty((B, H), W_T.dtype)  # carried gradients
    dc = np.empty((B, H), W_T.dtype)
    dh[:, :] = dh_n
    dc[:, :] = dc_n
    dhr = np.empty((B, H), W_T.dtype)
    for step in range(T):
        t = step if reverse else T - 1 - step
        dat = da[t]  # (B, 4H) contiguous
        for b in range(B):
            d = dat[b]
            if valid[b, t]:  # three sweeps with few arrays each, so that LLVM vectorises them
                g, tcb, cpb, dyb, dhb, dcb = gates[t, b], tanh_c[t, b], cprev[t, b], dy[b, t], dh[b], dc[b]
                for j in range(H):
                    dhb[j] += dyb[j]  # the carried dh becomes this step's total
                for j in range(H):
                    go, tc = g[3 * H + j], tcb[j]
                    d[3 * H + j] = dhb[j] * tc * go * (1.0 - go)  # [lstm:dgates] da_o
                    dcb[j] += dhb[j] * go * (1.0 - tc * tc)  # [lstm:dcell] the cell's total gradient
                for j in range(H):
                    gi, gf, gg, dct = g[j], g[H + j], g[2 * H + j], dcb[j]
                    d[j] = dct * gg * gi * (1.0 - gi)  # [lstm:dgates]
                    d[H + j] = dct * cpb[j] * gf * (1.0 - gf)
                    d[2 * H + j] = dct * gi * (1.0 - gg * gg)
                    dcb[j] = dct * gf
            else:  # [lstm:dmask] dh, dc pass through unchanged
                d[:] = 0.0
        matmul_bt_kernel(dat, W_T, dhr)  # (B, H) = da_t W_hh [lstm:dhprev]
        for b in range(B):
            if valid[b, t]:
                dh[b] = dhr[b]
    dh0[:, :] = dh
    dc0[:, :] = dc
