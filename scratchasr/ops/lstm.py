"""LSTM: sequence and single-step forward/backward pairs with hand-derived gradients.

Implements Hochreiter & Schmidhuber 1997 with the forget gate of Gers et al. 2000, in the
PyTorch layout (gates stacked i, f, g, o; one bias ``b = b_ih + b_hh``). Equations and the
backward-through-time derivation: docs/equations/lstm.md, walkthrough: docs/walkthroughs/lstm.md.

Efficiency by design:
* the input projection ``x W_ih^T + b`` of all time steps is ONE GEMM before the loop;
* inside the loop only ``h_{t-1} W_hh^T`` (forward) and ``da_t W_hh`` (backward) remain;
* the element-wise gate work is fused in a Numba kernel (kernels/lstm.py) whose NumPy twin lives
  here (``_cell_forward_numpy``/``_cell_backward_numpy``);
* after the backward loop, ``dW_ih``, ``dW_hh``, ``db`` and ``dx`` are again single GEMMs over all
  steps.

Internally the loop runs time-major ``(T, B, ...)`` so each step's slice is contiguous.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

import numpy as np

from .._backend import dispatch, resolve_backend
from .._validate import float_array, length_mask, lengths_array, same_dtype
from ..kernels.lstm import (lstm_cell_backward_kernel, lstm_cell_forward_kernel,
                            lstm_sequence_backward_kernel, lstm_sequence_forward_kernel)

__all__ = ["lstm_forward", "lstm_backward", "lstm_step_forward", "lstm_step_backward", "LSTMCache",
           "LSTMStepCache"]

# ----------------------------------------------------------------------------- NumPy twins

def _gate_scale(H: int, dtype) -> np.ndarray:
    """(4H,) s = 1/2 on the sigmoid blocks i, f, o and 1 on g, so that tanh(s * a) gives every gate
    from one vectorised tanh: sigmoid(x) = (1 + tanh(x / 2)) / 2 [lstm:gates]."""
    s = np.full(4 * H, 0.5, dtype=dtype)
    s[2 * H:3 * H] = 1.0
    return s


def _cell_forward_numpy(t, h_prev, c_prev, valid, gates, h, c, tanh_c, y):
    """NumPy twin of ``kernels.lstm.lstm_cell_forward_kernel`` (same arguments, fills the same outputs).

    t (B, 4H) = tanh(s * a), see ``_gate_scale``."""
    H = h_prev.shape[1]
    m = valid.astype(bool)[:, None]  # (B, 1)
    t = np.where(m, t, 0)  # padded rows are never read (NaN-safe)
    # BEGIN ASSIGNMENT A2 points=3
    gi = 0.5 + 0.5 * t[:, :H]  # [lstm:gates]
    gf = 0.5 + 0.5 * t[:, H:2 * H]
    gg = t[:, 2 * H:3 * H]
    go = 0.5 + 0.5 * t[:, 3 * H:]
    cc = gf * c_prev + gi * gg  # [lstm:cell]
    tc = np.tanh(cc)
    hh = go * tc  # [lstm:hidden]
    gates[...] = np.where(m, np.concatenate([gi, gf, gg, go], axis=1), 0)
    c[...] = np.where(m, cc, c_prev)  # [lstm:mask] padded steps carry the state
    h[...] = np.where(m, hh, h_prev)
    tanh_c[...] = np.where(m, tc, 0)
    y[...] = np.where(m, hh, 0)
    # END ASSIGNMENT


def _cell_backward_numpy(dy, dh_next, dc_next, gates, c_prev, tanh_c, valid, da, dc_prev, dh_pass):
    """NumPy twin of ``kernels.lstm.lstm_cell_backward_kernel``."""
    H = dy.shape[1]
    m = valid.astype(bool)[:, None]
    gi, gf, gg, go = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:3 * H], gates[:, 3 * H:]
    # BEGIN ASSIGNMENT A2 points=3
    dh = np.where(m, dy, 0) + dh_next  # dy at padded rows is ignored: their output is a constant 0
    dct = dc_next + dh * go * (1 - tanh_c * tanh_c)  # [lstm:dcell]
    da_all = np.concatenate([dct * gg * gi * (1 - gi),  # [lstm:dgates] da_i
                             dct * c_prev * gf * (1 - gf),  # da_f
                             dct * gi * (1 - gg * gg),  # da_g
                             dh * tanh_c * go * (1 - go)], axis=1)  # da_o
    da[...] = np.where(m, da_all, 0)
    dc_prev[...] = np.where(m, dct * gf, dc_next)  # [lstm:dmask]
    dh_pass[...] = np.where(m, 0, dh_next)
    # END ASSIGNMENT


def _cell_forward(backend: str):
    return dispatch(backend, _cell_forward_numpy, lstm_cell_forward_kernel)


def _cell_backward(backend: str):
    return dispatch(backend, _cell_backward_numpy, lstm_cell_backward_kernel)


def _check_weights(D: int, H: int, W_ih, W_hh, b):
    float_array("W_ih", W_ih, shape=(4 * H, D))
    float_array("W_hh", W_hh, shape=(4 * H, H))
    float_array("b", b, shape=(4 * H,))


# ----------------------------------------------------------------------------- single step

class LSTMStepCache(NamedTuple):
    x: np.ndarray  # (B, D) input
    h_prev: np.ndarray  # (B, H)
    c_prev: np.ndarray  # (B, H)
    W_ih: np.ndarray  # (4H, D)
    W_hh: np.ndarray  # (4H, H)
    gates: np.ndarray  # (B, 4H) activated i, f, g, o
    tanh_c: np.ndarray  # (B, H) tanh of the new cell
    backend: str  # resolved: "numpy" or "numba"


def lstm_step_forward(x: np.ndarray, h_prev: np.ndarray, c_prev: np.ndarray, W_ih: np.ndarray,
                      W_hh: np.ndarray, b: np.ndarray, *, backend: Optional[str] = None
                      ) -> Tuple[np.ndarray, np.ndarray, LSTMStepCache]:
    """One LSTM step for decoders that run step by step.

    x (B, D), h_prev (B, H), c_prev (B, H), W_ih (4H, D), W_hh (4H, H), b (4H,)
    -> h (B, H), c (B, H), cache. Same equations as ``lstm_forward`` [lstm:preact] [lstm:cell].
    """
    float_array("x", x, ndim=2)
    B, D = x.shape
    float_array("h_prev", h_prev, ndim=2)
    H = h_prev.shape[1]
    float_array("h_prev", h_prev, shape=(B, H))
    float_array("c_prev", c_prev, shape=(B, H))
    _check_weights(D, H, W_ih, W_hh, b)
    dtype = same_dtype(x=x, h_prev=h_prev, c_prev=c_prev, W_ih=W_ih, W_hh=W_hh, b=b)
    backend = resolve_backend(backend)
    fwd = _cell_forward(backend)
    a = x @ W_ih.T + h_prev @ W_hh.T + b  # (B, 4H) [lstm:preact]
    t = np.tanh(a * _gate_scale(H, dtype))  # every gate's one transcendental, vectorised [lstm:gates]
    valid = np.ones(B, dtype=np.uint8)
    gates = np.empty((B, 4 * H), dtype)
    h, c, tanh_c, y = (np.empty((B, H), dtype) for _ in range(4))
    fwd(t, np.ascontiguousarray(h_prev), np.ascontiguousarray(c_prev), valid, gates, h, c, tanh_c, y)
    return h, c, LSTMStepCache(x, h_prev, c_prev, W_ih, W_hh, gates, tanh_c, backend)


def lstm_step_backward(dh: np.ndarray, dc: Optional[np.ndarray], cache: LSTMStepCache
                       ) -> Tuple[np.ndarray, ...]:
    """Backward of ``lstm_step_forward``.

    dh, dc (B, H) gradients of the step's outputs (``dc=None`` means zero)
    -> dx (B, D), dh_prev (B, H), dc_prev (B, H), dW_ih (4H, D), dW_hh (4H, H), db (4H,).
    [lstm:dcell] [lstm:dgates] [lstm:dweights]
    """
    B, H = cache.h_prev.shape
    dtype = cache.gates.dtype
    _forward_dtype("dh", float_array("dh", dh, shape=(B, H)), dtype)
    dc = np.zeros_like(cache.h_prev) if dc is None else \
        _forward_dtype("dc", float_array("dc", dc, shape=(B, H)), dtype)
    bwd = _cell_backward(cache.backend)
    da = np.empty((B, 4 * H), dtype)
    dc_prev, dh_pass = np.empty((B, H), dtype), np.empty((B, H), dtype)
    bwd(np.ascontiguousarray(dh, dtype), np.zeros((B, H), dtype), np.ascontiguousarray(dc, dtype),
        cache.gates, np.ascontiguousarray(cache.c_prev), cache.tanh_c, np.ones(B, np.uint8), da, dc_prev,
        dh_pass)
    dx = da @ cache.W_ih  # (B, D) [lstm:dinput]
    dh_prev = da @ cache.W_hh  # (B, H) [lstm:dhprev]
    return dx, dh_prev, dc_prev, da.T @ cache.x, da.T @ cache.h_prev, da.sum(0)  # [lstm:dweights]


# ----------------------------------------------------------------------------- sequence

def _sequence_forward_numpy(gates, bias, W, h0, c0, valid, reverse, hprev, cprev, tanh_c, y, h_n, c_n):
    """NumPy twin of ``kernels.lstm.lstm_sequence_forward_kernel`` (same arguments, fills the same outputs;
    ``gates`` holds the scaled input projection on entry and the activated gates on return).

    One step at a time: the recurrent GEMM, one vectorised tanh for all four gates, then the cell.
    Reverse runs t = T-1 .. 0: padding (at the end) carries h0, c0 until each sequence's last valid
    step, which is the per-sequence reversal [lstm:reverse]."""
    T = valid.shape[1]
    h, c = h0.copy(), c0.copy()
    # BEGIN ASSIGNMENT A2 points=2
    for step in range(T):
        t = T - 1 - step if reverse else step  # [lstm:reverse]
        hprev[t], cprev[t] = h, c
        st = np.tanh(gates[t] + bias + h @ W.T)  # (B, 4H) tanh(s * a_t) [lstm:preact] [lstm:gates]
        h, c = np.empty_like(h), np.empty_like(c)
        _cell_forward_numpy(st, hprev[t], cprev[t], valid[:, t], gates[t], h, c, tanh_c[t], y[:, t])
    h_n[...], c_n[...] = h, c
    # END ASSIGNMENT


def _sequence_backward_numpy(dy, dh_n, dc_n, W_T, gates, cprev, tanh_c, valid, reverse, da, dh0, dc0):
    """NumPy twin of ``kernels.lstm.lstm_sequence_backward_kernel``: steps in the forward's opposite order."""
    T = valid.shape[1]
    dh, dc = dh_n.copy(), dc_n.copy()
    dc_prev, dh_pass = np.empty_like(dc), np.empty_like(dh)
    # BEGIN ASSIGNMENT A2 points=2
    for step in range(T):
        t = step if reverse else T - 1 - step
        _cell_backward_numpy(dy[:, t], dh, dc, gates[t], cprev[t], tanh_c[t], valid[:, t], da[t], dc_prev,
                             dh_pass)
        dh = da[t] @ W_T.T + dh_pass  # (B, H) [lstm:dhprev]
        dc, dc_prev = dc_prev, dc
    dh0[...], dc0[...] = dh, dc
    # END ASSIGNMENT


def _sequence_forward(backend: str):
    return dispatch(backend, _sequence_forward_numpy, lstm_sequence_forward_kernel)


def _sequence_backward(backend: str):
    return dispatch(backend, _sequence_backward_numpy, lstm_sequence_backward_kernel)


class LSTMCache(NamedTuple):
    x: np.ndarray  # (T, B, D) time-major copy of the input, padded steps zeroed
    lengths: np.ndarray  # (B,) int64
    valid: np.ndarray  # (B, T) uint8, 1 at t < lengths[b]
    W_ih: np.ndarray  # (4H, D)
    W_hh: np.ndarray  # (4H, H)
    hprev: np.ndarray  # (T, B, H) hidden state entering step t (t in input order)
    cprev: np.ndarray  # (T, B, H) cell state entering step t
    gates: np.ndarray  # (T, B, 4H) activated i, f, g, o (0 at padded steps)
    tanh_c: np.ndarray  # (T, B, H) tanh(c_t) (0 at padded steps)
    reverse: bool  # steps ran t = T-1 .. 0
    backend: str  # resolved: "numpy" or "numba"


def lstm_forward(x: np.ndarray, lengths, h0: np.ndarray, c0: np.ndarray, W_ih: np.ndarray,
                 W_hh: np.ndarray, b: np.ndarray, *, reverse: bool = False, backend: Optional[str] = None
                 ) -> Tuple[np.ndarray, Tuple[np.ndarray, np.ndarray], LSTMCache]:
    """LSTM over a padded batch.

    x (B, T, D), lengths (B,) int (None = all T), h0, c0 (B, H), W_ih (4H, D), W_hh (4H, H), b (4H,)
    -> h (B, T, H) (zero at t >= lengths[b]), (h_n, c_n) (B, H) states after each sequence's last
    valid step, cache. ``reverse=True`` runs each sequence from its last valid step to its first.
    [lstm:preact] [lstm:mask] [lstm:reverse]
    """
    float_array("x", x, ndim=3)
    B, T, D = x.shape
    lengths = lengths_array("lengths", lengths, B, T)
    float_array("h0", h0, ndim=2)
    H = h0.shape[1]
    float_array("h0", h0, shape=(B, H))
    float_array("c0", c0, shape=(B, H))
    _check_weights(D, H, W_ih, W_hh, b)
    dtype = same_dtype(x=x, h0=h0, c0=c0, W_ih=W_ih, W_hh=W_hh, b=b)
    backend = resolve_backend(backend)
    mask = length_mask(lengths, T)  # (B, T)
    # Time-major copy (the loop's arrays are time-major, see the kernel) with padded steps zeroed, so
    # that NaN padding cannot reach dW_ih = da^T x through 0 * NaN.
    xs = np.ascontiguousarray(x.transpose(1, 0, 2)) if mask.all() else \
        np.where(mask.T[:, :, None], x.transpose(1, 0, 2), 0).astype(dtype, copy=False)  # (T, B, D)
    valid = np.ascontiguousarray(mask, dtype=np.uint8)  # (B, T)
    # The gate scale s (see _gate_scale) is folded into the weights:
    # s * a = x (s W_ih)^T + h (s W_hh)^T + s b.
    s = _gate_scale(H, dtype)
    # ONE GEMM for all steps [lstm:preact]; the kernel turns it into the gates in place
    gates = (xs.reshape(T * B, D) @ (W_ih * s[:, None]).T).reshape(T, B, 4 * H)
    hprev, cprev, tanh_c = (np.empty((T, B, H), dtype) for _ in range(3))
    y = np.empty((B, T, H), dtype)
    h_n, c_n = np.empty((B, H), dtype), np.empty((B, H), dtype)
    _sequence_forward(backend)(gates, b * s, W_hh * s[:, None], np.ascontiguousarray(h0),
                               np.ascontiguousarray(c0), valid, bool(reverse), hprev, cprev, tanh_c, y,
                               h_n, c_n)
    cache = LSTMCache(xs, lengths, valid, W_ih, W_hh, hprev, cprev, gates, tanh_c, bool(reverse), backend)
    return y, (h_n, c_n), cache


def _forward_dtype(name: str, a: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Gradients come in the forward's dtype: a silent cast (float64 -> float32) is refused, as the
    forward refuses mixed dtypes."""
    if a.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {dtype} (the forward pass's), got {a.dtype}")
    return a


def lstm_backward(dh: np.ndarray, cache: LSTMCache, dh_n: Optional[np.ndarray] = None,
                  dc_n: Optional[np.ndarray] = None) -> Tuple[np.ndarray, ...]:
    """Backward through time of ``lstm_forward``.

    dh (B, T, H) gradient of the outputs (values at padded steps are ignored), dh_n, dc_n (B, H)
    gradients of the final states (None = zero)
    -> dx (B, T, D) (exactly 0 at padded steps), dh0 (B, H), dc0 (B, H), dW_ih (4H, D),
    dW_hh (4H, H), db (4H,). [lstm:dcell] [lstm:dgates] [lstm:dhprev] [lstm:dweights]
    """
    T, B, D = cache.x.shape
    H = cache.W_hh.shape[1]
    dtype = cache.gates.dtype
    _forward_dtype("dh", float_array("dh", dh, shape=(B, T, H)), dtype)
    dh_n = np.zeros((B, H), dtype) if dh_n is None else \
        np.ascontiguousarray(_forward_dtype("dh_n", float_array("dh_n", dh_n, shape=(B, H)), dtype))
    dc_n = np.zeros((B, H), dtype) if dc_n is None else \
        np.ascontiguousarray(_forward_dtype("dc_n", float_array("dc_n", dc_n, shape=(B, H)), dtype))
    da = np.empty((T, B, 4 * H), dtype)
    dh0, dc0 = np.empty((B, H), dtype), np.empty((B, H), dtype)
    _sequence_backward(cache.backend)(dh, dh_n, dc_n, np.ascontiguousarray(cache.W_hh.T), cache.gates,
                                      cache.cprev, cache.tanh_c, cache.valid, cache.reverse, da, dh0, dc0)
    # BEGIN ASSIGNMENT A2 points=2
    da2 = da.reshape(T * B, 4 * H)
    dW_ih = da2.T @ cache.x.reshape(T * B, D)  # [lstm:dweights] one GEMM over all steps
    dW_hh = da2.T @ cache.hprev.reshape(T * B, H)
    db = da2.sum(0)
    # [lstm:dinput] zero where da = 0 (padding); B GEMMs (T x 4H)(4H x D) on strided rows of da give dx
    # batch-first without a transposed copy
    dx = np.matmul(da.transpose(1, 0, 2), cache.W_ih)  # (B, T, D)
    return dx, dh0, dc0, dW_ih, dW_hh, db
    # END ASSIGNMENT
