"""Relative-position self-attention with a memory bank of chunk summaries (Emformer-style far context).

References: Shi et al. 2021, "Emformer: Efficient Memory Transformer Based Acoustic Model for Low Latency
Streaming Speech Recognition" (a memory bank of one vector per past segment, attended by later
segments); Wu et al. 2020 ("augmented memory"). Simplified here to keep streaming exact and the
backward readable: the memory vector of chunk c is the mean of its (valid) attention inputs
[conformer:memory-summary], projected by the attention's own key and value maps; a frame of chunk c
attends its chunk-mask window (own chunk + ``left_chunks`` left chunks, relative positions) and the
memory slots of the chunks before the window, with a content score only [conformer:memory-scores].
So beyond the window the past costs one key/value per chunk instead of one per frame.
Equations: docs/equations/conformer.md. The op pair follows ops/rel_attention.py, whose notation it
keeps; its extra inputs are the lengths and the chunk geometry.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from .._validate import length_mask, lengths_array
from ..ops.attention import masked_softmax, masked_softmax_backward, merge_heads, query_rows, split_heads
from ..ops.rel_attention import rel_positions, rel_shift_index
from .attention import RelPositionMultiHeadAttention

__all__ = ["memory_rel_mha_forward", "memory_rel_mha_backward", "MemoryRelPositionMHA", "memory_mask",
           "summary_weights"]


def summary_weights(lengths: np.ndarray, T: int, chunk_size: int) -> np.ndarray:
    """(B, T, Nc) averaging weights: ``w[b, t, c] = 1 / n_bc`` at the n_bc valid frames t of chunk c."""
    Nc = -(-T // chunk_size)
    valid = length_mask(lengths, T).astype(np.float64)  # (B, T)
    A = (np.arange(T)[:, None] // chunk_size == np.arange(Nc)[None, :]).astype(np.float64)  # (T, Nc)
    cnt = valid @ A  # (B, Nc) valid frames per chunk
    return valid[:, :, None] * A[None] / np.maximum(cnt, 1)[:, None, :]  # [conformer:memory-summary]


def memory_mask(lengths: np.ndarray, T: int, chunk_size: int, left_chunks: int) -> np.ndarray:
    """(B, 1, T, Nc) bool: query t (valid) may read memory slot c iff c < chunk(t) - left_chunks and chunk c
    holds a valid frame [conformer:memory-scores]."""
    Nc = -(-T // chunk_size)
    valid = length_mask(lengths, T)
    c_of = np.arange(T) // chunk_size
    before = np.arange(Nc)[None, :] <= c_of[:, None] - left_chunks - 1  # (T, Nc) beyond the window
    nonempty = np.arange(Nc)[None, :] * chunk_size < lengths[:, None]  # (B, Nc)
    return valid[:, None, :, None] & before[None, None] & nonempty[:, None, None, :]


class MemoryMHACache(NamedTuple):
    x: np.ndarray  # (B, T, E) input
    pos: np.ndarray  # (2T - 1, E) relative encodings
    Wsum: np.ndarray  # (B, T, Nc) summary weights
    S: np.ndarray  # (B, Nc, E) chunk summaries
    W_q: np.ndarray  # (E, E)
    W_k: np.ndarray  # (E, E)
    W_v: np.ndarray  # (E, E)
    W_pos: np.ndarray  # (E, E)
    W_o: np.ndarray  # (E, E)
    qu: np.ndarray  # (B, H, T, dk)
    qv: np.ndarray  # (B, H, T, dk)
    k: np.ndarray  # (B, H, T, dk)
    v: np.ndarray  # (B, H, T, dk)
    km: np.ndarray  # (B, H, Nc, dk) memory keys
    vm: np.ndarray  # (B, H, Nc, dk) memory values
    p: np.ndarray  # (H, 2T - 1, dk)
    P: np.ndarray  # (B, H, T, T + Nc) attention weights (window keys, then memory slots)
    ctx: np.ndarray  # (B, T, E)
    rows: np.ndarray  # (B, T, 1) bool, query rows with an allowed key
    scale: float


def memory_rel_mha_forward(x, pos, W_q, b_q, W_k, b_k, W_v, b_v, W_pos, pos_bias_u, pos_bias_v, W_o, b_o, *,
                           num_heads: int, mask: np.ndarray, lengths, chunk_size: int, left_chunks: int):
    """x (B, T, E), window ``mask`` (broadcastable to (B, 1, T, T): padding & chunk mask) -> out (B, T, E).

    [conformer:memory-summary] [conformer:memory-scores] [attn:rel-scores]"""
    B, T, E = x.shape
    H = num_heads
    dk = E // H
    lengths = lengths_array("lengths", lengths, B, T)
    valid = length_mask(lengths, T)[:, :, None]
    if not valid.all():  # padded frames are never read: NaN there cannot leak through 0 * NaN
        x = np.where(valid, x, 0)
    Wsum = summary_weights(lengths, T, chunk_size).astype(x.dtype)
    S = np.einsum("btc,bte->bce", Wsum, x)  # (B, Nc, E) chunk means [conformer:memory-summary]
    q = split_heads(x @ W_q.T + b_q, H)
    k = split_heads(x @ W_k.T + b_k, H)
    v = split_heads(x @ W_v.T + b_v, H)
    km = split_heads(S @ W_k.T + b_k, H)  # (B, H, Nc, dk) the attention's own key/value maps
    vm = split_heads(S @ W_v.T + b_v, H)
    p = (pos @ W_pos.T).reshape(2 * T - 1, H, dk).transpose(1, 0, 2)
    qu = q + pos_bias_u[None, :, None, :]
    qv = q + pos_bias_v[None, :, None, :]
    bd_full = qv @ p.swapaxes(-1, -2)[None]
    bd = np.take_along_axis(bd_full, np.broadcast_to(rel_shift_index(T), (B, H, T, T)), axis=-1)
    scores = np.concatenate([qu @ k.swapaxes(-1, -2) + bd, qu @ km.swapaxes(-1, -2)], axis=-1)  # (B,H,T,T+Nc)
    full_mask = np.concatenate([np.broadcast_to(mask, (B, 1, T, T)),
                                memory_mask(lengths, T, chunk_size, left_chunks)], axis=-1)
    scale = 1.0 / np.sqrt(dk)
    P = masked_softmax(scores * x.dtype.type(scale), full_mask)  # [conformer:memory-scores]
    ctx = merge_heads(P[..., :T] @ v + P[..., T:] @ vm)
    rows = query_rows(full_mask, B, T)
    out = np.where(rows, ctx @ W_o.T + b_o, 0)
    return out, MemoryMHACache(x, pos, Wsum, S, W_q, W_k, W_v, W_pos, W_o, qu, qv, k, v, km, vm, p, P, ctx,
                               rows, scale)


def memory_rel_mha_backward(dout: np.ndarray, cache: MemoryMHACache):
    """-> dx, dW_q, db_q, dW_k, db_k, dW_v, db_v, dW_pos, dpos_bias_u, dpos_bias_v, dW_o, db_o
    [conformer:memory-back]"""
    c = cache
    B, H, T, dk = c.qu.shape
    E = H * dk
    dout = np.where(c.rows, dout, 0)
    d2 = dout.reshape(-1, E)
    dW_o, db_o = d2.T @ c.ctx.reshape(-1, E), d2.sum(0)
    do = split_heads(dout @ c.W_o, H)  # (B, H, T, dk)
    Pw, Pm = c.P[..., :T], c.P[..., T:]
    dv, dvm = Pw.swapaxes(-1, -2) @ do, Pm.swapaxes(-1, -2) @ do
    dP = np.concatenate([do @ c.v.swapaxes(-1, -2), do @ c.vm.swapaxes(-1, -2)], axis=-1)
    ds = masked_softmax_backward(dP, c.P) * c.P.dtype.type(c.scale)
    dsw, dsm = ds[..., :T], ds[..., T:]
    dqu = dsw @ c.k + dsm @ c.km  # the content query meets window keys and memory keys
    dk, dkm = dsw.swapaxes(-1, -2) @ c.qu, dsm.swapaxes(-1, -2) @ c.qu
    dbd_full = np.zeros((B, H, T, 2 * T - 1), ds.dtype)
    dbd_full[:, :, np.arange(T)[:, None], rel_shift_index(T)] = dsw  # [attn:drel]
    dqv = dbd_full @ c.p[None]
    dp = np.einsum("bhtr,bhtd->hrd", dbd_full, c.qv)
    dq = dqu + dqv
    du, dvb = dqu.sum(axis=(0, 2)), dqv.sum(axis=(0, 2))
    dpp = dp.transpose(1, 0, 2).reshape(2 * T - 1, E)
    dW_pos = dpp.T @ c.pos
    xs, Ss = c.x.reshape(-1, E), c.S.reshape(-1, E)
    dx = np.zeros_like(c.x)
    out = {}
    for name, dh, W in (("q", dq, c.W_q), ("k", dk, c.W_k), ("v", dv, c.W_v)):
        dm = merge_heads(dh).reshape(-1, E)
        dx += (dm @ W).reshape(c.x.shape)
        out[name] = [dm.T @ xs, dm.sum(0)]
    dS = np.zeros_like(c.S)
    for name, dh, W in (("k", dkm, c.W_k), ("v", dvm, c.W_v)):  # memory slots: S through the same maps
        dm = merge_heads(dh).reshape(-1, E)
        dS += (dm @ W).reshape(c.S.shape)
        out[name][0] += dm.T @ Ss
        out[name][1] += dm.sum(0)
    dx += np.einsum("btc,bce->bte", c.Wsum, dS)  # each valid frame gets 1/n of its chunk's summary gradient
    return (dx, *out["q"], *out["k"], *out["v"], dW_pos, du, dvb, dW_o, db_o)


class MemoryRelPositionMHA(RelPositionMultiHeadAttention):
    """``RelPositionMultiHeadAttention`` (same parameters) plus the memory bank of chunk summaries.

    ``forward(x (B, T, E), mask, lengths) -> (B, T, E)``; ``backward(dout) -> dx``.
    """

    def __init__(self, embed_dim: int, num_heads: int, *, chunk_size: int, left_chunks: int, seed=0,
                 dtype=np.float32):
        super().__init__(embed_dim, num_heads, seed=seed, dtype=dtype)
        if chunk_size < 1 or left_chunks < 0:
            raise ValueError(f"memory: a memory bank needs chunk_size >= 1 and left_chunks >= 0, got "
                             f"chunk_size={chunk_size}, left_chunks={left_chunks}")
        self.chunk_size, self.left_chunks = chunk_size, left_chunks

    def forward(self, x: np.ndarray, mask: Optional[np.ndarray] = None, lengths=None) -> np.ndarray:
        B, T, _ = x.shape
        if mask is None:
            mask = np.ones((1, 1, T, T), bool)
        pos = rel_positions(T, self.E, dtype=x.dtype)
        out, cache = memory_rel_mha_forward(x, pos, *(self.params[n] for n in self.NAMES), num_heads=self.H,
                                            mask=mask, lengths=lengths, chunk_size=self.chunk_size,
                                            left_chunks=self.left_chunks)
        self.push(cache)
        return out

    __call__ = forward

    def backward(self, dout: np.ndarray) -> np.ndarray:
        g = memory_rel_mha_backward(dout, self.pop())
        for n, d in zip(self.NAMES, g[1:]):
            self.grads[n] += d
        return g[0]
