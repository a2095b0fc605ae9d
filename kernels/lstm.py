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

from ._njit import njit


@njit
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


@njit
def lstm_cell_backward_kernel(dy, dh_next, dc_next, gates, c_prev, tanh_c, valid, da, dc_prev, dh_pass):
    """Backward of one LSTM step. Twin: ``scratchasr.ops.lstm._cell_backward_numpy``.

    dy (B, H) gradient of the emitted output; dh_next, dc_next (B, H) gradients flowing into this
    step's carried state from the future; gates (B, 4H), c_prev, tanh_c (B, H) from the forward.
    Fills da (B, 4H) [lstm:dgates], dc_prev (B, H) [lstm:dcell] and dh_pass (B, H): the part of
    dL/dh_prev that bypasses the recurrent GEMM (the carried gradient at padded rows [lstm:dmask]).
    """
    B = dy.shape[0]
    H = dy.shape[1]
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
