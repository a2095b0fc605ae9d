"""Relative-position multi-head self-attention (Transformer-XL form, as used by Conformer).

References: Dai et al. 2019, "Transformer-XL" (section 3.3: score = content + position terms with
the global biases u and v); Gulati et al. 2020, "Conformer"; ESPnet
``RelPositionMultiHeadedAttention`` (``pos_bias_u``, ``pos_bias_v``, ``linear_pos`` without bias,
``rel_shift``) whose layout we follow: relative encodings for distances ``T-1, ..., -(T-1)``.
Equations and backward: docs/equations/attention.md.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

import numpy as np

from .._validate import float_array, positive_int, same_dtype
from .attention import (_check_mask, _sinusoid, masked_softmax, masked_softmax_backward, merge_heads,
                        query_rows, split_heads)

__all__ = ["rel_positions", "rel_shift_index", "rel_mha_forward", "rel_mha_backward", "RelMHACache"]


def rel_positions(T: int, E: int, *, dtype=np.float64) -> np.ndarray:
    """Sinusoidal relative encodings ``(2T - 1, E)``; row r encodes distance ``T - 1 - r`` [attn:sinusoid]."""
    T = positive_int("T", T)
    E = positive_int("E", E, minimum=2)
    if E % 2:
        raise ValueError(f"E: expected an even embedding size, got {E}")
    return _sinusoid(np.arange(T - 1, -T, -1, dtype=np.float64), E).astype(dtype)


def rel_shift_index(T: int) -> np.ndarray:
    """(T, T) column index into the (T, 2T - 1) position scores: ``r(i, j) = T - 1 - i + j`` [attn:rel-shift].

    Row r of the encodings is distance ``T - 1 - r``, so ``r(i, j)`` is the row for distance ``i - j``.
    It equals ESPnet's pad-reshape ``rel_shift`` without the reshape trick.
    """
    i = np.arange(T)[:, None]
    j = np.arange(T)[None, :]
    return T - 1 - i + j


class RelMHACache(NamedTuple):
    x: np.ndarray  # (B, T, E) input
    pos: np.ndarray  # (2T - 1, E) relative encodings
    W_q: np.ndarray  # (E, E)
    W_k: np.ndarray  # (E, E)
    W_v: np.ndarray  # (E, E)
    W_pos: np.ndarray  # (E, E)
    W_o: np.ndarray  # (E, E)
    qu: np.ndarray  # (B, H, T, dk) queries plus bias u
    qv: np.ndarray  # (B, H, T, dk) queries plus bias v
    k: np.ndarray  # (B, H, T, dk)
    v: np.ndarray  # (B, H, T, dk)
    p: np.ndarray  # (H, 2T - 1, dk) projected relative encodings
    P: np.ndarray  # (B, H, T, T) attention weights
    ctx: np.ndarray  # (B, T, E) merged heads
    rows: Optional[np.ndarray]  # (B, T, 1) bool query rows with an allowed key
    scale: float  # 1 / sqrt(dk)
    used: Optional[np.ndarray] = None  # (B, T, 1) bool frames that are an allowed key or such a query row


def rel_mha_forward(x: np.ndarray, pos: np.ndarray, W_q: np.ndarray, b_q: np.ndarray, W_k: np.ndarray,
                    b_k: np.ndarray, W_v: np.ndarray, b_v: np.ndarray, W_pos: np.ndarray,
                    pos_bias_u: np.ndarray, pos_bias_v: np.ndarray, W_o: np.ndarray, b_o: np.ndarray, *,
                    num_heads: int, mask: Optional[np.ndarray] = None) -> Tuple[np.ndarray, RelMHACache]:
    """Relative-position multi-head self-attention.

    x (B, T, E); pos (2T - 1, E) from ``rel_positions``; W_* (E, E), b_* (E,); W_pos (E, E) (no bias);
    pos_bias_u, pos_bias_v (H, E // H); mask bool broadcastable to (B, H, T, T) -> out (B, T, E).
    [attn:rel-scores] [attn:rel-shift]
    """
    float_array("x", x, ndim=3)
    B, T, E = x.shape
    H = positive_int("num_heads", num_heads)
    if E % H:
        raise ValueError(f"num_heads: expected a divisor of the embedding size {E}, got {H}")
    dk = E // H
    float_array("pos", pos, shape=(2 * T - 1, E))
    for name, W in (("W_q", W_q), ("W_k", W_k), ("W_v", W_v), ("W_pos", W_pos), ("W_o", W_o)):
        float_array(name, W, shape=(E, E))
    for name, bias in (("b_q", b_q), ("b_k", b_k), ("b_v", b_v), ("b_o", b_o)):
        float_array(name, bias, shape=(E,))
    float_array("pos_bias_u", pos_bias_u, shape=(H, dk))
    float_array("pos_bias_v", pos_bias_v, shape=(H, dk))
    same_dtype(x=x, pos=pos, W_q=W_q, W_k=W_k, W_v=W_v, W_pos=W_pos, W_o=W_o, b_q=b_q, b_k=b_k, b_v=b_v,
               b_o=b_o, pos_bias_u=pos_bias_u, pos_bias_v=pos_bias_v)
    mask = _check_mask(mask, (B, H, T, T))
    rows = query_rows(mask, B, T)
    used = key_used = None
    if mask is not None:
        # Frames that are neither an allowed key nor a query with an allowed key (padding) are never
        # read: zeroed, so that NaN there cannot reach outputs or gradients through 0 * NaN. Keys that no
        # query may attend (padding under a key-only mask) are zeroed in k and v for the same reason.
        key_used = np.broadcast_to(mask, (B, H, T, T)).any(axis=(1, 2))  # (B, T)
        used = (key_used | rows[:, :, 0])[:, :, None]  # (B, T, 1)
        if used.all():
            used = None
        else:
            x = np.where(used, x, 0)
        if key_used.all():
            key_used = None

    q = split_heads(x @ W_q.T + b_q, H)  # (B, H, T, dk) [attn:proj]
    k = split_heads(x @ W_k.T + b_k, H)
    v = split_heads(x @ W_v.T + b_v, H)
    if key_used is not None:
        k = np.where(key_used[:, None, :, None], k, 0)
        v = np.where(key_used[:, None, :, None], v, 0)
    p = (pos @ W_pos.T).reshape(2 * T - 1, H, dk).transpose(1, 0, 2)  # (H, 2T-1, dk)
    qu = q + pos_bias_u[None, :, None, :]  # content query
    qv = q + pos_bias_v[None, :, None, :]  # position query
    ac = qu @ k.swapaxes(-1, -2)  # (B, H, T, T) terms (a) + (c) [attn:rel-scores]
    bd_full = qv @ p.swapaxes(-1, -2)[None]  # (B, H, T, 2T-1) terms (b) + (d), every distance
    idx = rel_shift_index(T)
    bd = np.take_along_axis(bd_full, np.broadcast_to(idx, (B, H, T, T)), axis=-1)  # [attn:rel-shift]
    scale = 1.0 / np.sqrt(dk)
    P = masked_softmax((ac + bd) * x.dtype.type(scale), mask)  # [attn:softmax]
    ctx = merge_heads(P @ v)  # (B, T, E) [attn:out]
    out = ctx @ W_o.T + b_o  # [attn:mha-out]
    if rows is not None:
        out = np.where(rows, out, 0)
    return out, RelMHACache(x, pos, W_q, W_k, W_v, W_pos, W_o, qu, qv, k, v, p, P, ctx, rows, scale, used)


def rel_mha_backward(dout: np.ndarray, cache: RelMHACache) -> Tuple[np.ndarray, ...]:
    """Backward of ``rel_mha_forward``: dout (B, T, E) ->
    dx, dpos, dW_q, db_q, dW_k, db_k, dW_v, db_v, dW_pos, dpos_bias_u, dpos_bias_v, dW_o, db_o.
    [attn:drel] [attn:dsoftmax] [attn:dproj]"""
    x, pos, W_q, W_k, W_v, W_pos = cache.x, cache.pos, cache.W_q, cache.W_k, cache.W_v, cache.W_pos
    W_o, qu, qv, k, v, p, P = cache.W_o, cache.qu, cache.qv, cache.k, cache.v, cache.p, cache.P
    ctx, rows, scale = cache.ctx, cache.rows, cache.scale
    float_array("dout", dout, shape=ctx.shape)
    B, H, T, dk = qu.shape
    E = H * dk
    if rows is not None:
        dout = np.where(rows, dout, 0)
    d2 = dout.reshape(-1, E)
    dW_o, db_o = d2.T @ ctx.reshape(-1, E), d2.sum(0)  # [attn:dproj]
    do = split_heads(dout @ W_o, H)  # (B, H, T, dk)
    dv = P.swapaxes(-1, -2) @ do  # [attn:dout]
    ds = masked_softmax_backward(do @ v.swapaxes(-1, -2), P) * P.dtype.type(scale)  # [attn:dsoftmax]
    dqu = ds @ k  # d(ac) = ds
    dk = ds.swapaxes(-1, -2) @ qu
    # Undo the shift: each row i scatters its T scores into distinct columns, so plain assignment
    # (no accumulation) is exact [attn:drel].
    dbd_full = np.zeros((B, H, T, 2 * T - 1), ds.dtype)
    dbd_full[:, :, np.arange(T)[:, None], rel_shift_index(T)] = ds
    dqv = dbd_full @ p[None]  # (B, H, T, dk)
    dp = np.einsum("bhtr,bhtd->hrd", dbd_full, qv)  # (H, 2T-1, dk)
    dq = dqu + dqv  # q feeds both the content and the position query
    du, dvb = dqu.sum(axis=(0, 2)), dqv.sum(axis=(0, 2))  # (H, dk)
    dpp = dp.transpose(1, 0, 2).reshape(2 * T - 1, E)  # gradient of pos @ W_pos^T
    dW_pos, dpos = dpp.T @ pos, dpp @ W_pos  # [attn:dproj]
    xs = x.reshape(-1, E)
    grads = []
    for dh, W in ((dq, W_q), (dk, W_k), (dv, W_v)):
        dm = merge_heads(dh).reshape(-1, E)
        grads.append(((dm @ W).reshape(x.shape), dm.T @ xs, dm.sum(0)))  # [attn:dproj]
    (dxq, dW_q, db_q), (dxk, dW_k, db_k), (dxv, dW_v, db_v) = grads
    dx = dxq + dxk + dxv
    if cache.used is not None:
        dx = np.where(cache.used, dx, 0)  # frames the forward zeroed (never read) get exactly zero gradient
    return dx, dpos, dW_q, db_q, dW_k, db_k, dW_v, db_v, dW_pos, du, dvb, dW_o, db_o
