"""Scaled dot-product and multi-head attention with hand-derived backward, masks, positions.

References: Vaswani et al. 2017 ("Attention is all you need": scaled dot-product attention,
multi-head attention, sinusoidal positional encoding); PyTorch ``F.scaled_dot_product_attention``
and ``nn.MultiheadAttention`` (weight layout ``y = x W^T + b``); chunked streaming masks as in
WeNet (Zhang et al. 2020, "Unified streaming and non-streaming two-pass end-to-end ASR").
Equations and derivations: docs/equations/attention.md.

Masks are boolean, True where attending is allowed, broadcastable to ``(B, H, Tq, Tk)``. A query
row with no allowed key yields a zero output and zero gradients (never NaN).
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

import numpy as np

from .._backend import dispatch, resolve_backend
from .._validate import float_array, length_mask, lengths_array, positive_int, same_dtype
from ..kernels.attention import softmax_rows_backward_kernel, softmax_rows_kernel

__all__ = ["sdpa_forward", "sdpa_backward", "padding_mask", "causal_mask", "chunk_mask",
           "sinusoidal_positions", "mha_forward", "mha_backward", "split_heads", "merge_heads",
           "masked_softmax", "masked_softmax_backward", "SDPACache", "MHACache"]


# ----------------------------------------------------------------------------- masks

def padding_mask(lengths, T: int, *, queries: bool = False) -> np.ndarray:
    """Key-padding mask ``(B, 1, 1, T)``: True at keys ``t < lengths[b]``.

    ``queries=True`` returns ``(B, 1, T, T)`` that also masks padded *query* rows entirely, so that
    self-attention outputs at padded frames are exactly zero.
    """
    T = positive_int("T", T, minimum=0)
    lengths = lengths_array("lengths", lengths, len(np.atleast_1d(lengths)), T)
    valid = length_mask(lengths, T)  # (B, T)
    if queries:
        return (valid[:, None, :, None] & valid[:, None, None, :])  # (B, 1, T, T)
    return valid[:, None, None, :]


def causal_mask(Tq: int, Tk: Optional[int] = None) -> np.ndarray:
    """Causal mask ``(1, 1, Tq, Tk)``: query i may attend keys j <= i + (Tk - Tq) (its past and itself)."""
    Tq = positive_int("Tq", Tq, minimum=0)
    Tk = Tq if Tk is None else positive_int("Tk", Tk, minimum=0)
    # BEGIN ASSIGNMENT A4 points=1
    return (np.arange(Tk)[None, :] <= np.arange(Tq)[:, None] + (Tk - Tq))[None, None]  # [attn:mask]
    # END ASSIGNMENT


def chunk_mask(T: int, chunk_size: int, *, left_chunks: int = -1) -> np.ndarray:
    """Chunked streaming mask ``(1, 1, T, T)``: a frame sees its own chunk and ``left_chunks`` before it.

    ``left_chunks=-1`` means unlimited left context (WeNet's ``num_decoding_left_chunks=-1``).
    No frame ever sees a later chunk, so outputs of chunk c do not depend on frames after chunk c.
    """
    T = positive_int("T", T, minimum=0)
    chunk_size = positive_int("chunk_size", chunk_size)
    if isinstance(left_chunks, bool) or not isinstance(left_chunks, (int, np.integer)) or left_chunks < -1:
        raise ValueError(f"left_chunks: expected an integer >= -1, got {left_chunks!r}")
    # BEGIN ASSIGNMENT A4 points=1
    c = np.arange(T) // chunk_size  # chunk index of every frame
    allowed = c[None, :] <= c[:, None]  # [attn:mask] no look-ahead past one's own chunk
    if left_chunks >= 0:
        allowed &= c[None, :] >= c[:, None] - left_chunks
    # END ASSIGNMENT
    return allowed[None, None]


def sinusoidal_positions(T: int, E: int, *, dtype=np.float64) -> np.ndarray:
    """Absolute sinusoidal encoding ``(T, E)`` of Vaswani et al. 2017 [attn:sinusoid]."""
    T = positive_int("T", T, minimum=0)
    E = positive_int("E", E, minimum=2)
    if E % 2:
        raise ValueError(f"E: expected an even embedding size, got {E}")
    return _sinusoid(np.arange(T, dtype=np.float64), E).astype(dtype)


def _sinusoid(pos: np.ndarray, E: int) -> np.ndarray:
    inv_freq = np.exp(-np.log(10000.0) * np.arange(0, E, 2) / E)  # 1 / 10000^(2i/E)
    out = np.empty((len(pos), E))
    out[:, 0::2] = np.sin(pos[:, None] * inv_freq)  # [attn:sinusoid]
    out[:, 1::2] = np.cos(pos[:, None] * inv_freq)
    return out


# ----------------------------------------------------------------------------- masked softmax

def masked_softmax(s: np.ndarray, mask: Optional[np.ndarray], *, log2_gain: int = 0) -> np.ndarray:
    """Softmax over the last axis restricted to ``mask``; fully masked rows give all zeros [attn:softmax].

    ``log2_gain``: the softmax of ``s * 2**log2_gain`` (an exact power of two), for scores that only
    fit in floating point divided by it (see ``sdpa_forward``); the shifted scores ``(s - max)`` are
    multiplied with ``np.ldexp``, where overflow to ``-inf`` is correct (the weight is 0).
    ``s`` is not modified; the temporaries are updated in place (one pass each, no extra copies).
    """
    if mask is None:
        with np.errstate(over="ignore"):  # 1e308 - (-1e308) = -inf is right: exp gives 0
            e = s - s.max(axis=-1, keepdims=True)  # every exponent <= 0
            if log2_gain:
                np.ldexp(e, log2_gain, out=e)
        np.exp(e, out=e)
        e /= e.sum(axis=-1, keepdims=True)
        return e
    # BEGIN ASSIGNMENT A4 points=2
    s = np.where(mask, s, -np.inf)  # [attn:softmax] masked scores never reach exp
    m = s.max(axis=-1, keepdims=True)
    m[~np.isfinite(m)] = 0  # all-masked row: any finite shift
    with np.errstate(over="ignore"):
        s -= m
        if log2_gain:
            np.ldexp(s, log2_gain, out=s)
    np.exp(s, out=s)  # exp(-inf) = 0 at masked keys
    z = s.sum(axis=-1, keepdims=True)
    z[z == 0] = 1  # all-masked row stays 0
    s /= z
    return s
    # END ASSIGNMENT


def masked_softmax_backward(dp: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``ds = p * (dp - sum_j dp_j p_j)`` [attn:dsoftmax]; zero wherever ``p`` is zero (masked keys)."""
    # BEGIN ASSIGNMENT A4 points=1
    ds = dp - np.einsum("...j,...j->...", dp, p)[..., None]  # [attn:dsoftmax]
    ds *= p
    return ds
    # END ASSIGNMENT


def _softmax_rows_numpy(s: np.ndarray, mask: Optional[np.ndarray]) -> bool:
    """NumPy twin of ``kernels.attention.softmax_rows_kernel``: the scores s (R, Tk) overwritten with the
    masked softmax (mask (R, Tk) or None); False (s untouched) when an allowed score is +inf or NaN, for
    the caller's exact fallback [attn:softmax]."""
    allowed = s if mask is None else np.where(mask, s, -np.inf)
    if np.isnan(allowed).any() or np.isposinf(allowed).any():
        return False
    s[...] = masked_softmax(s, mask)
    return True


def _softmax_rows_backward_numpy(dp: np.ndarray, p: np.ndarray, scale) -> None:
    """NumPy twin of ``kernels.attention.softmax_rows_backward_kernel``: dp (R, Tk) overwritten with
    ds = scale * p * (dp - sum dp p), exactly 0 where p = 0 whatever dp holds there [attn:dsoftmax]."""
    attended = p != 0
    dp[...] = np.where(attended, masked_softmax_backward(np.where(attended, dp, 0), p) * scale, 0)


_BLOCK_MIN = 16384  # Tq * Tk from which the fused path runs one (b, h) block at a time


def _sdpa_forward_fused(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: Optional[np.ndarray], scale: float,
                        backend: str) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """(out, p) with the fused row softmax, or None when a score is +inf/NaN (then ``sdpa_forward``
    takes its exact path: overflow rescaling, NaN propagation).

    For large score matrices one (b, h) block at a time: its scores (Tq x Tk) are produced, normalised
    in place and multiplied by v while they are in L2, instead of three sweeps over the whole
    (B, H, Tq, Tk) array. Small ones (decoding steps) in one batched call each. [attn:scores]
    [attn:softmax] [attn:out]"""
    B, H, Tq, _ = q.shape
    Tk = k.shape[2]
    softmax = dispatch(backend, _softmax_rows_numpy, softmax_rows_kernel)
    qs = q * q.dtype.type(scale)  # the 1/sqrt(d) on the smaller array
    mb = None if mask is None else np.broadcast_to(mask, (B, H, Tq, Tk))
    with np.errstate(over="ignore"):
        if Tq * Tk < _BLOCK_MIN:
            p = qs @ k.swapaxes(-1, -2)  # (B, H, Tq, Tk)
            if not softmax(p.reshape(-1, Tk), None if mb is None else mb.reshape(-1, Tk)):
                return None
            out = p @ v
        else:
            p = np.empty((B, H, Tq, Tk), q.dtype)
            out = np.empty((B, H, Tq, v.shape[3]), q.dtype)
            for b in range(B):
                for h in range(H):
                    pb = p[b, h]
                    np.matmul(qs[b, h], k[b, h].T, out=pb)
                    if not softmax(pb, None if mb is None else mb[b, h]):
                        return None
                    np.matmul(pb, v[b, h], out=out[b, h])
    if not np.isfinite(out).all():  # a NaN value row: recompute reading only attended values
        out = _attend(p, v)
    return out, p


def _sdpa_backward_fused(dout: np.ndarray, cache) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``sdpa_backward`` with the fused softmax backward (the 1/sqrt(d) folded into ds): the same four
    GEMMs, one (b, h) block at a time for large score matrices (dp and ds never leave L2, p is read
    once), with dv = p^T dout and dk = ds^T q computed as dout^T p and q^T ds (BLAS runs those shapes
    faster; dk and dv are returned as transposed views). [attn:dout] [attn:dsoftmax] [attn:dscores]"""
    q, k, v, p = cache.q, cache.k, cache.v, cache.p
    B, H, Tq, Tk = p.shape
    sc = p.dtype.type(cache.scale)
    dsoftmax = dispatch(cache.backend, _softmax_rows_backward_numpy, softmax_rows_backward_kernel)
    kf, qf = _finite_or_zero(k), _finite_or_zero(q)
    if Tq * Tk < _BLOCK_MIN:
        dvT = dout.swapaxes(-1, -2) @ p  # (B, H, dv, Tk)
        ds = dout @ v.swapaxes(-1, -2)  # dp, overwritten in place with ds
        dsoftmax(ds.reshape(-1, Tk), p.reshape(-1, Tk), sc)
        return ds @ kf, (qf.swapaxes(-1, -2) @ ds).swapaxes(-1, -2), dvT.swapaxes(-1, -2)
    dq = np.empty(q.shape, p.dtype)
    dkT = np.empty((B, H, q.shape[3], Tk), p.dtype)
    dvT = np.empty((B, H, v.shape[3], Tk), p.dtype)
    ds = np.empty((Tq, Tk), p.dtype)  # one block's dp, then ds, reused
    for b in range(B):
        for h in range(H):
            pb, db = p[b, h], dout[b, h]
            np.matmul(db.T, pb, out=dvT[b, h])  # dv^T = dout^T p [attn:dout]
            np.matmul(db, v[b, h].T, out=ds)  # dp
            dsoftmax(ds, pb, sc)  # ds = scale * p * (dp - sum dp p) [attn:dsoftmax]
            np.matmul(ds, kf[b, h], out=dq[b, h])  # [attn:dscores]
            np.matmul(qf[b, h].T, ds, out=dkT[b, h])
    return dq, dkT.swapaxes(-1, -2), dvT.swapaxes(-1, -2)


# ----------------------------------------------------------------------------- SDPA

class SDPACache(NamedTuple):
    q: np.ndarray  # (B, H, Tq, d)
    k: np.ndarray  # (B, H, Tk, d)
    v: np.ndarray  # (B, H, Tk, dv)
    p: np.ndarray  # (B, H, Tq, Tk) attention weights, 0 at masked keys
    scale: float  # 1 / sqrt(d)
    backend: str = "numpy"  # resolved; "numba": the fused softmax kernels (kernels/attention.py)


def _check_mask(mask, shape) -> Optional[np.ndarray]:
    if mask is None:
        return None
    if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_:
        got = getattr(mask, 'dtype', type(mask).__name__)
        raise TypeError(f"mask: expected a boolean numpy.ndarray, got {got}")
    try:
        if np.broadcast_shapes(mask.shape, shape) != tuple(shape):
            raise ValueError
    except ValueError:
        raise ValueError(f"mask: expected a shape broadcastable to {tuple(shape)}, "
                         f"got {mask.shape}") from None
    return mask


def sdpa_forward(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: Optional[np.ndarray] = None, *,
                 backend: Optional[str] = None) -> Tuple[np.ndarray, SDPACache]:
    """Scaled dot-product attention.

    q (B, H, Tq, d), k (B, H, Tk, d), v (B, H, Tk, dv), mask bool broadcastable to (B, H, Tq, Tk)
    (True = may attend) -> out (B, H, Tq, dv), cache. [attn:scores] [attn:softmax] [attn:out]
    """
    float_array("q", q, ndim=4)
    B, H, Tq, d = q.shape
    float_array("k", k, shape=(B, H, None, d))
    Tk = k.shape[2]
    float_array("v", v, shape=(B, H, Tk, None))
    same_dtype(q=q, k=k, v=v)
    mask = _check_mask(mask, (B, H, Tq, Tk))
    backend = resolve_backend(backend)
    scale = 1.0 / np.sqrt(d)
    if backend == "numba":  # fused softmax; the code below is the readable reference and the exact
        fused = _sdpa_forward_fused(q, k, v, mask, scale, backend)  # path for overflowing/NaN scores
        if fused is not None:
            return fused[0], SDPACache(q, k, v, fused[1], scale, backend)
    with np.errstate(over="ignore"):
        s = (q * q.dtype.type(scale)) @ k.swapaxes(-1, -2)  # [attn:scores] on q  # BLANK A4
    log2_gain = 0
    if not np.isfinite(s).all() and np.isfinite(q).all() and np.isfinite(k).all():
        # finite q and k whose scores overflow (|s| > 1.8e308 in float64): compute s / 2**(e_q + e_k)
        # exactly, with q and k divided by powers of two, and let the softmax multiply back
        e_q, e_k = int(np.frexp(np.abs(q).max())[1]), int(np.frexp(np.abs(k).max())[1])
        s = (np.ldexp(q, -e_q) * q.dtype.type(scale)) @ np.ldexp(k, -e_k).swapaxes(-1, -2)
        log2_gain = e_q + e_k
    p = masked_softmax(s, mask, log2_gain=log2_gain)  # [attn:softmax]
    out = _attend(p, v)  # (B, H, Tq, dv) [attn:out]
    return out, SDPACache(q, k, v, p, scale, "numpy")


def _attend(p: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``p @ v`` reading only the values a query weighs: a NaN in a masked-out value row (padding)
    would otherwise reach every output through ``0 * NaN``. Rows that came out non-finite (rare)
    are recomputed over their keys with ``p > 0``; NaN in a value that is attended stays NaN."""
    out = p @ v  # (B, H, Tq, dv) [attn:out]
    if np.isfinite(out).all():
        return out
    for b, h, i in np.argwhere(~np.isfinite(out).all(axis=-1)):
        keys = p[b, h, i] > 0  # (Tk,)
        out[b, h, i] = p[b, h, i, keys] @ v[b, h, keys]
    return out


def sdpa_backward(dout: np.ndarray, cache: SDPACache) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward of ``sdpa_forward``: dout (B, H, Tq, dv) -> dq, dk, dv.

    [attn:dout] [attn:dsoftmax] [attn:dscores]"""
    q, k, v, p, scale = cache.q, cache.k, cache.v, cache.p, cache.scale
    float_array("dout", dout, shape=p.shape[:3] + (v.shape[3],))
    if cache.backend == "numba":
        return _sdpa_backward_fused(dout, cache)
    # BEGIN ASSIGNMENT A4 points=2
    dv = p.swapaxes(-1, -2) @ dout  # (B, H, Tk, dv) [attn:dout]
    dp = dout @ v.swapaxes(-1, -2)  # (B, H, Tq, Tk)
    if not np.isfinite(dp).all():
        # a non-finite value row the forward never read (p = 0): ds is exactly 0 there whatever dp,
        # so zeroing dp where p = 0 changes nothing but keeps 0 * NaN out of the row sums
        dp = np.where(p > 0, dp, 0)
    ds = masked_softmax_backward(dp, p)  # [attn:dsoftmax] zero at masked keys
    sc = p.dtype.type(scale)
    dq = (ds @ _finite_or_zero(k)) * sc  # [attn:dscores] (the 1/sqrt(d) applied to the smaller arrays)
    dk = (ds.swapaxes(-1, -2) @ _finite_or_zero(q)) * sc
    # END ASSIGNMENT
    return dq, dk, dv


def _finite_or_zero(x: np.ndarray) -> np.ndarray:
    """``x`` with NaN/inf replaced by 0, for products with ``ds``: a non-finite key or query the
    forward attended made its ``p`` row (hence ``ds``) NaN already; any other one has ``ds = 0``."""
    return x if np.isfinite(x).all() else np.where(np.isfinite(x), x, 0)


# ----------------------------------------------------------------------------- multi-head attention

def split_heads(x: np.ndarray, H: int) -> np.ndarray:
    """(B, T, E) -> (B, H, T, E // H) [attn:heads]"""
    B, T, E = x.shape
    return x.reshape(B, T, H, E // H).transpose(0, 2, 1, 3)


def merge_heads(x: np.ndarray) -> np.ndarray:
    """(B, H, T, dk) -> (B, T, H * dk), the inverse of ``split_heads`` [attn:heads]"""
    B, H, T, dk = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, T, H * dk)


def query_rows(mask: Optional[np.ndarray], B: int, Tq: int) -> Optional[np.ndarray]:
    """(B, Tq, 1) float-free bool: query rows with at least one allowed key in some head."""
    if mask is None:
        return None
    m = np.broadcast_to(mask, (B, mask.shape[1], Tq, mask.shape[3]))
    return m.any(axis=(1, 3))[:, :, None]


class MHACache(NamedTuple):
    x_q: np.ndarray  # (B, Tq, E) query input
    x_kv: np.ndarray  # (B, Tk, E) key/value input
    W_q: np.ndarray  # (E, E)
    W_k: np.ndarray  # (E, E)
    W_v: np.ndarray  # (E, E)
    W_o: np.ndarray  # (E, E)
    attn: SDPACache  # per-head SDPA cache; q, k, v of shape (B, H, T, E // H)
    ctx: np.ndarray  # (B, Tq, E) merged heads, the input of the output projection
    rows: Optional[np.ndarray]  # (B, Tq, 1) bool, False at query rows with no allowed key


def mha_forward(x_q: np.ndarray, x_kv: np.ndarray, W_q: np.ndarray, b_q: np.ndarray, W_k: np.ndarray,
                b_k: np.ndarray, W_v: np.ndarray, b_v: np.ndarray, W_o: np.ndarray, b_o: np.ndarray, *,
                num_heads: int, mask: Optional[np.ndarray] = None) -> Tuple[np.ndarray, MHACache]:
    """Multi-head attention (PyTorch ``nn.MultiheadAttention`` layout, weights (E, E), ``y = x W^T + b``).

    x_q (B, Tq, E), x_kv (B, Tk, E); mask bool broadcastable to (B, H, Tq, Tk) -> out (B, Tq, E).
    Query rows whose mask allows no key give exactly zero output (bias included).
    [attn:proj] [attn:heads] [attn:mha-out]
    """
    float_array("x_q", x_q, ndim=3)
    B, Tq, E = x_q.shape
    float_array("x_kv", x_kv, shape=(B, None, E))
    Tk = x_kv.shape[1]
    H = positive_int("num_heads", num_heads)
    if E % H:
        raise ValueError(f"num_heads: expected a divisor of the embedding size {E}, got {H}")
    for name, W, bias in (("W_q", W_q, b_q), ("W_k", W_k, b_k), ("W_v", W_v, b_v), ("W_o", W_o, b_o)):
        float_array(name, W, shape=(E, E))
        float_array("b" + name[1:], bias, shape=(E,))
    same_dtype(x_q=x_q, x_kv=x_kv, W_q=W_q, W_k=W_k, W_v=W_v, W_o=W_o, b_q=b_q, b_k=b_k, b_v=b_v, b_o=b_o)
    mask = _check_mask(mask, (B, H, Tq, Tk))
    q = split_heads(x_q @ W_q.T + b_q, H)  # (B, H, Tq, dk) [attn:proj]
    k = split_heads(x_kv @ W_k.T + b_k, H)
    v = split_heads(x_kv @ W_v.T + b_v, H)
    o, attn = sdpa_forward(q, k, v, mask)
    ctx = merge_heads(o)  # (B, Tq, E) [attn:heads]
    out = ctx @ W_o.T + b_o  # [attn:mha-out]
    rows = query_rows(mask, B, Tq)
    if rows is not None:
        out = np.where(rows, out, 0)
    return out, MHACache(x_q, x_kv, W_q, W_k, W_v, W_o, attn, ctx, rows)


def mha_backward(dout: np.ndarray, cache: MHACache) -> Tuple[np.ndarray, ...]:
    """Backward of ``mha_forward``: dout (B, Tq, E) ->
    dx_q, dx_kv, dW_q, db_q, dW_k, db_k, dW_v, db_v, dW_o, db_o. [attn:dproj] [attn:mha-out]
    For self-attention (x_q is x_kv) the caller adds dx_q + dx_kv."""
    x_q, x_kv, W_q, W_k, W_v, W_o = cache.x_q, cache.x_kv, cache.W_q, cache.W_k, cache.W_v, cache.W_o
    attn, ctx, rows = cache.attn, cache.ctx, cache.rows
    float_array("dout", dout, shape=ctx.shape)
    H = attn.q.shape[1]
    E = ctx.shape[2]
    if rows is not None:
        dout = np.where(rows, dout, 0)  # those outputs were the constant 0
    d2 = dout.reshape(-1, E)
    dW_o = d2.T @ ctx.reshape(-1, E)  # [attn:dproj]
    db_o = d2.sum(0)
    dq, dk, dv = sdpa_backward(split_heads(dout @ W_o, H), attn)
    grads = []
    for dh, x, W in ((dq, x_q, W_q), (dk, x_kv, W_k), (dv, x_kv, W_v)):
        dm = merge_heads(dh).reshape(-1, E)  # (B*T, E) [attn:heads]
        xf = _finite_or_zero(x).reshape(-1, E)  # a NaN frame nothing attended (padding) has dm = 0
        grads.append(((dm @ W).reshape(x.shape), dm.T @ xf, dm.sum(0)))  # [attn:dproj]
    (dx_q, dW_q, db_q), (dx_k, dW_k, db_k), (dx_v, dW_v, db_v) = grads
    return dx_q, dx_k + dx_v, dW_q, db_q, dW_k, db_k, dW_v, db_v, dW_o, db_o
