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
from ..kernels.lstm import lstm_cell_backward_kernel, lstm_cell_forward_kernel

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


def _cell_backward_numpy(dy, dh_next, dc_next, gates, c_prev, tanh_c, valid, da, dc_prev, dh_pass):
    """NumPy twin of ``kernels.lstm.lstm_cell_backward_kernel``."""
    H = dy.shape[1]
    m = valid.astype(bool)[:, None]
    gi, gf, gg, go = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:3 * H], gates[:, 3 * H:]
    dh = np.where(m, dy, 0) + dh_next  # dy at padded rows is ignored: their output is a constant 0
    dct = dc_next + dh * go * (1 - tanh_c * tanh_c)  # [lstm:dcell]
    da_all = np.concatenate([dct * gg * gi * (1 - gi),  # [lstm:dgates] da_i
                             dct * c_prev * gf * (1 - gf),  # da_f
                             dct * gi * (1 - gg * gg),  # da_g
                             dh * tanh_c * go * (1 - go)], axis=1)  # da_o
    da[...] = np.where(m, da_all, 0)
    dc_prev[...] = np.where(m, dct * gf, dc_next)  # [lstm:dmask]
    dh_pass[...] = np.where(m, 0, dh_next)


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

def _reorder(a: np.ndarray, rev_index: np.ndarray) -> np.ndarray:
    """a (B, T, ...) gathered along time with ``rev_index`` [lstm:reverse].

    A plain flip when every length is T."""
    T = a.shape[1]
    if T > 0 and np.all(rev_index[:, 0] == T - 1):  # every sequence is full length
        return a[:, ::-1]
    return np.take_along_axis(a, rev_index[:, :, None], axis=1)


def _reverse_index(lengths: np.ndarray, T: int) -> np.ndarray:
    """(B, T) gather index that reverses each sequence within its length and leaves padding in place.

    It is an involution: applying it twice is the identity, so it both reverses and un-reverses.
    """
    t = np.arange(T)[None, :]
    L = lengths[:, None]
    return np.where(length_mask(lengths, T), L - 1 - t, t)  # [lstm:reverse]


class LSTMCache(NamedTuple):
    x: np.ndarray  # (T, B, D) time-major input, padded steps zeroed (reversed if reverse)
    lengths: np.ndarray  # (B,) int64
    valid: np.ndarray  # (T, B) uint8, 1 at t < lengths[b]
    W_ih: np.ndarray  # (4H, D)
    W_hh: np.ndarray  # (4H, H)
    hs: np.ndarray  # (T + 1, B, H) carried hidden states, hs[0] = h0
    cs: np.ndarray  # (T + 1, B, H) carried cell states, cs[0] = c0
    gates: np.ndarray  # (T, B, 4H) activated i, f, g, o (0 at padded steps)
    tanh_c: np.ndarray  # (T, B, H) tanh(c_t) (0 at padded steps)
    rev_index: Optional[np.ndarray]  # (B, T) per-sequence reversal index, None when not reverse
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
    fwd = _cell_forward(backend)

    mask = length_mask(lengths, T)  # (B, T)
    rev_index = _reverse_index(lengths, T) if reverse else None
    xs = _reorder(x, rev_index) if reverse else x
    # Time-major copy with padded steps zeroed, so NaN padding cannot reach dW_ih = da^T x.
    xs = np.where(mask.T[:, :, None], xs.transpose(1, 0, 2), 0).astype(dtype, copy=False)  # (T, B, D)
    valid = np.ascontiguousarray(mask.T, dtype=np.uint8)  # (T, B)

    # The gate scale s (see _gate_scale) is folded into the weights:
    # s * a = x (s W_ih)^T + h (s W_hh)^T + s b.
    s = _gate_scale(H, dtype)
    xproj = xs.reshape(T * B, D) @ (W_ih * s[:, None]).T + b * s  # ONE GEMM for all steps [lstm:preact]
    xproj = xproj.reshape(T, B, 4 * H)
    W_hh_s = W_hh * s[:, None]  # (4H, H) C-contiguous
    hs = np.empty((T + 1, B, H), dtype)
    cs = np.empty((T + 1, B, H), dtype)
    hs[0], cs[0] = h0, c0
    gates = np.empty((T, B, 4 * H), dtype)
    tanh_c = np.empty((T, B, H), dtype)
    y = np.empty((T, B, H), dtype)
    rT = np.empty((4 * H, B), dtype)  # recurrent term, transposed: W (B-column) is BLAS's faster layout here
    st = np.empty((B, 4 * H), dtype)  # tanh(s * a_t)
    for t in range(T):
        np.matmul(W_hh_s, hs[t].T, out=rT)  # (4H, B): the only GEMM inside the loop [lstm:preact]
        np.add(xproj[t], rT.T, out=st)
        np.tanh(st, out=st)  # one vectorised tanh for all four gates [lstm:gates]
        fwd(st, hs[t], cs[t], valid[t], gates[t], hs[t + 1], cs[t + 1], tanh_c[t], y[t])

    out = y.transpose(1, 0, 2)  # (B, T, H)
    if reverse:
        out = _reorder(out, rev_index)  # back to input order
    out = np.ascontiguousarray(out)
    cache = LSTMCache(xs, lengths, valid, W_ih, W_hh, hs, cs, gates, tanh_c, rev_index, backend)
    return out, (hs[T].copy(), cs[T].copy()), cache


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
    xs, hs, cs = cache.x, cache.hs, cache.cs  # (T, B, D), (T + 1, B, H), (T + 1, B, H)
    gates, valid, rev_index = cache.gates, cache.valid, cache.rev_index
    T, B, D = xs.shape
    H = hs.shape[2]
    dtype = hs.dtype
    _forward_dtype("dh", float_array("dh", dh, shape=(B, T, H)), dtype)
    # copies, so the carried buffers below never alias dh_n / dc_n
    dh_carry = np.zeros((B, H), dtype) if dh_n is None else \
        _forward_dtype("dh_n", float_array("dh_n", dh_n, shape=(B, H)), dtype).copy()
    dc_carry = np.zeros((B, H), dtype) if dc_n is None else \
        _forward_dtype("dc_n", float_array("dc_n", dc_n, shape=(B, H)), dtype).copy()
    bwd = _cell_backward(cache.backend)

    if rev_index is not None:
        dh = _reorder(dh, rev_index)  # into processing order
    dy = np.ascontiguousarray(dh.transpose(1, 0, 2), dtype=dtype)  # (T, B, H) a copy: dh is never written
    da = np.empty((T, B, 4 * H), dtype)
    dc_prev = np.empty((B, H), dtype)
    dh_pass = np.empty((B, H), dtype)
    W_hh_c = np.ascontiguousarray(cache.W_hh)
    dh_bufs = (np.empty((B, H), dtype), np.empty((B, H), dtype))  # dh_carry alternates between two buffers
    for t in range(T - 1, -1, -1):
        bwd(dy[t], dh_carry, dc_carry, gates[t], cs[t], cache.tanh_c[t], valid[t], da[t], dc_prev, dh_pass)
        dh_new = dh_bufs[t % 2]  # never the buffer dh_carry currently points to
        np.matmul(da[t], W_hh_c, out=dh_new)  # (B, H) the only GEMM inside the loop [lstm:dhprev]
        dh_new += dh_pass
        dh_carry = dh_new
        dc_carry, dc_prev = dc_prev, dc_carry  # swap buffers (dc_prev is overwritten next step)

    da2 = da.reshape(T * B, 4 * H)
    dW_ih = da2.T @ xs.reshape(T * B, D)  # [lstm:dweights] one GEMM over all steps
    dW_hh = da2.T @ hs[:T].reshape(T * B, H)
    db = da2.sum(0)
    dx = (da2 @ cache.W_ih).reshape(T, B, D).transpose(1, 0, 2)  # [lstm:dinput] zero where da = 0 (padding)
    if rev_index is not None:
        dx = _reorder(dx, rev_index)
    return np.ascontiguousarray(dx), dh_carry, dc_carry.copy(), dW_ih, dW_hh, db
