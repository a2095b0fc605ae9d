"""1-D and 2-D convolutions by im2col + one matmul, with sequence lengths.

Equations: docs/equations/ops.md, [ops:conv1d] ... [ops:conv2d-back]. Weights in PyTorch layout
(cross-correlation, as torch.nn.Conv1d/Conv2d). Layouts:

- conv1d: x (B, T, C_in) batch-first (time before channels, like the rest of the library);
  weight (C_out, C_in / groups, K). Depthwise convolution is ``groups == C_in``.
- conv2d: x (B, C, T, F) channels-first as torch.nn.Conv2d (time is axis 2, frequency axis 3);
  weight (C_out, C_in, KT, KF). Enough for Conformer's 2x (3x3, stride 2) subsampling.

Lengths: frames at or past ``lengths[b]`` are zeroed before the convolution, so they act exactly
like zero padding of the shorter sequence and never influence a valid output; output frames at or
past ``out_lengths[b] = floor((L + 2p - d (K - 1) - 1) / s) + 1`` are set to zero and get no gradient.
The im2col gather uses an index array; with groups == 1 the convolution is then one matmul, with
groups > 1 one ``np.einsum`` contraction per call (no copy into group-major order); depthwise
convolution (groups == C_in == C_out) skips im2col and does one multiply-add per kernel tap.
Backward scatters back with one strided add per kernel tap (a loop over K, never over time).
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

import numpy as np

from .._validate import float_array, length_mask, lengths_array, positive_int, same_dtype

__all__ = ["conv1d_forward", "conv1d_backward", "conv2d_forward", "conv2d_backward", "conv_out_lengths",
           "conv_output_lengths", "Conv1dCache", "Conv2dCache"]


def conv_out_lengths(lengths: np.ndarray, kernel_size: int, stride: int = 1, padding: int = 0,
                     dilation: int = 1) -> np.ndarray:
    """``floor((L + 2p - d (K - 1) - 1) / s) + 1``, clipped at 0 (an empty input gives no frame)."""
    L = np.asarray(lengths, dtype=np.int64)
    out = (L + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1  # [ops:conv-lengths]
    return np.where(L > 0, np.maximum(out, 0), 0)


conv_output_lengths = conv_out_lengths  # the longer name, as used by the module layer


def _pair(name, v, minimum):
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{name}: expected an int or a pair of ints, got {v!r}")
        return positive_int(name, v[0], minimum=minimum), positive_int(name, v[1], minimum=minimum)
    v = positive_int(name, v, minimum=minimum)
    return v, v


def _im2col_1d(xp: np.ndarray, idx: np.ndarray, G: int) -> np.ndarray:
    """``cols[b*T_out + t, k, g, c] = xp[b, idx[t, k], g*c_g + c]``: (B*T_out, K, G, c_g), a gathered copy."""
    B, _, C_in = xp.shape
    T_out, K = idx.shape
    return xp[:, idx, :].reshape(B * T_out, K, G, C_in // G)  # [ops:conv1d]


def _im2col_2d(xp: np.ndarray, idx_t: np.ndarray, idx_f: np.ndarray) -> np.ndarray:
    """Rows ``(b, t, f)``, columns ``(c, i, j)``: ``xp[b, c, idx_t[t, i], idx_f[f, j]]``."""
    B, C = xp.shape[:2]
    (T_out, KT), (F_out, KF) = idx_t.shape, idx_f.shape
    cols = xp[:, :, idx_t[:, :, None, None], idx_f[None, None, :, :]]  # (B, C, T_out, KT, F_out, KF)
    return cols.transpose(0, 2, 4, 1, 3, 5).reshape(B * T_out * F_out, C * KT * KF)  # [ops:conv2d]


class Conv1dCache(NamedTuple):
    xp: np.ndarray  # (B, T + 2p, C_in) masked, zero-padded input; backward re-gathers im2col from it
    # (about K/stride times less memory than caching the im2col matrix; the gather is cheap)
    weight: np.ndarray  # (C_out, C_in/G, K) the weight
    out_mask: np.ndarray  # (B, T_out, 1) valid output frames, as x.dtype
    in_mask: np.ndarray  # (B, T, 1) valid input frames, as x.dtype
    idx: np.ndarray  # (T_out, K) int, padded-input time index t*s + k*d read by output t, tap k
    padding: int  # p
    has_bias: bool  # whether bias was given


def _tap(idx: np.ndarray, k: int, s: int) -> slice:
    """The padded-input frames read by tap k, ``idx[:, k] = k d + t s``, as a strided slice (a view)."""
    return slice(int(idx[0, k]), int(idx[-1, k]) + 1, s)


def _depthwise(weight: np.ndarray, C_in: int) -> bool:
    """groups == C_in == C_out: every output channel filters only its own input channel."""
    return weight.shape[1] == 1 and weight.shape[0] == C_in


def conv1d_forward(x: np.ndarray, weight: np.ndarray, bias: Optional[np.ndarray] = None, *, lengths=None,
                   stride: int = 1, padding: int = 0, dilation: int = 1, groups: int = 1):
    """``y[b, t, o] = bias[o] + sum_{k, c} w[o, c, k] x[b, t s - p + k d, g(o) C_in/G + c]``.

    x : (B, T, C_in); weight : (C_out, C_in / groups, K); bias : (C_out,) or None;
    lengths : (B,) or None. Returns ``(y (B, T_out, C_out), out_lengths (B,), cache)``.
    Depthwise convolution (groups == C_in == C_out) skips im2col: one multiply-add per tap.
    """
    x = float_array("x", x, ndim=3)
    B, T, C_in = x.shape
    weight = float_array("weight", weight, ndim=3)
    C_out, cg, K = weight.shape
    G = positive_int("groups", groups)
    s = positive_int("stride", stride)
    d = positive_int("dilation", dilation)
    p = positive_int("padding", padding, minimum=0)
    if C_in % G or C_out % G:
        raise ValueError(f"groups: expected a divisor of C_in={C_in} and C_out={C_out}, got {G}")
    if cg != C_in // G:
        raise ValueError(f"weight: expected shape ({C_out}, {C_in // G}, K) for C_in={C_in}, groups={G}, "
                         f"got {weight.shape}")
    if bias is not None:
        bias = float_array("bias", bias, ndim=1, shape=(C_out,))
    same_dtype(x=x, weight=weight, bias=bias)
    lengths = lengths_array("lengths", lengths, B, T)
    T_out = (T + 2 * p - d * (K - 1) - 1) // s + 1  # [ops:conv-lengths]
    if T_out < 1:
        raise ValueError(f"x: T={T} is too short for kernel {K}, dilation {d}, padding {p}")
    out_lengths = conv_out_lengths(lengths, K, s, p, d)
    in_mask = length_mask(lengths, T)[..., None].astype(x.dtype)  # (B, T, 1)
    out_mask = length_mask(out_lengths, T_out)[..., None].astype(x.dtype)  # (B, T_out, 1)
    xp = np.zeros((B, T + 2 * p, C_in), dtype=x.dtype)
    xp[:, p:p + T] = np.where(in_mask > 0, x, 0.0)  # padding frames become zeros (NaN-safe)
    idx = np.arange(T_out)[:, None] * s + np.arange(K)[None, :] * d  # (T_out, K)
    N = B * T_out
    if _depthwise(weight, C_in):  # per-channel filters: a multiply-add per tap beats any gather
        y = np.zeros((B, T_out, C_out), dtype=x.dtype)
        for k in range(K):  # y[:, t] += w[:, 0, k] * xp[:, t s + k d]  [ops:conv1d-depthwise]
            y += xp[:, _tap(idx, k, s), :] * weight[:, 0, k]
    elif G == 1:  # one matmul (N, K*C_in) @ (K*C_in, C_out); the weight reordered to rows (k, c)
        cols = _im2col_1d(xp, idx, G)  # (B*T_out, K, 1, C_in)  [ops:conv1d]
        y = cols.reshape(N, K * cg) @ weight.transpose(2, 1, 0).reshape(K * cg, C_out)  # [ops:conv1d]
    else:  # the same contraction per group; einsum avoids copying cols into group-major order
        cols = _im2col_1d(xp, idx, G)  # (B*T_out, K, G, cg)  [ops:conv1d]
        Wg = weight.reshape(G, C_out // G, cg, K)  # (G, o_g, c_g, K)
        y = np.einsum("nkgc,gock->ngo", cols, Wg)  # (N, G, o_g)  [ops:conv1d]
    y = y.reshape(B, T_out, C_out)  # output channel g*o_g + o
    if bias is not None:
        y = y + bias  # [ops:conv1d]
    y = y * out_mask  # output frames past out_lengths are zero
    return y, out_lengths, Conv1dCache(xp, weight, out_mask, in_mask, idx, p, bias is not None)


def conv1d_backward(dout: np.ndarray, cache: Conv1dCache):
    """``(dx (B, T, C_in), dweight (C_out, C_in/G, K), dbias (C_out,))``  [ops:conv1d-back].

    dbias is left out when the forward had no bias.
    """
    xp, weight, out_mask, in_mask, idx = cache.xp, cache.weight, cache.out_mask, cache.in_mask, cache.idx
    p, has_bias = cache.padding, cache.has_bias
    C_out, cg, K = weight.shape
    C_in = xp.shape[2]
    G = C_in // cg
    B, T_out = out_mask.shape[:2]
    N = B * T_out
    T = in_mask.shape[1]
    dout = float_array("dout", dout, shape=(B, T_out, C_out))
    dy = np.where(out_mask > 0, dout, 0.0)  # (B, T_out, C_out) invalid outputs were constant 0
    s = int(idx[1, 0] - idx[0, 0]) if T_out > 1 else 1  # the stride, recovered from the index table
    dxp = np.zeros((B, T + 2 * p, C_in), dtype=dy.dtype)
    if _depthwise(weight, C_in):
        dweight = np.empty(weight.shape, dtype=dy.dtype)
        for k in range(K):  # tap k read the frames x_k = xp[:, t s + k d]
            x_k = xp[:, _tap(idx, k, s), :]  # (B, T_out, C) a strided view
            dweight[:, 0, k] = np.einsum("btc,btc->c", x_k, dy)  # [ops:conv1d-depthwise-back]
            dxp[:, _tap(idx, k, s), :] += dy * weight[:, 0, k]  # [ops:conv1d-depthwise-back]
    else:
        cols = _im2col_1d(xp, idx, G)  # (N, K, G, cg) recomputed (see Conv1dCache)
        if G == 1:  # the two matmuls of a linear layer: dW = X^T dY, dX = dY W
            X, dY = cols.reshape(N, K * cg), dy.reshape(N, C_out)
            Wm = weight.transpose(2, 1, 0).reshape(K * cg, C_out)  # (K*cg, C_out) rows ordered (k, c)
            dweight = (X.T @ dY).reshape(K, cg, C_out).transpose(2, 1, 0)  # (C_out, cg, K)  [ops:conv1d-back]
            dcols = (dY @ Wm.T).reshape(B, T_out, K, cg)  # [ops:conv1d-back]
        else:
            dyg = dy.reshape(N, G, C_out // G)  # (N, G, o_g)
            Wg = weight.reshape(G, C_out // G, cg, K)
            dweight = np.einsum("nkgc,ngo->gock", cols, dyg).reshape(C_out, cg, K)  # [ops:conv1d-back]
            dcols = np.einsum("ngo,gock->nkgc", dyg, Wg).reshape(B, T_out, K, G * cg)  # [ops:conv1d-back]
        for k in range(K):  # col2im: tap k of output t came from padded time idx[t, k] = k d + t s
            dxp[:, _tap(idx, k, s), :] += dcols[:, :, k, :]  # a strided slice, no repeats  [ops:conv1d-back]
    dx = dxp[:, p:p + T] * in_mask  # padded input frames were replaced by zeros: no gradient
    if not has_bias:
        return dx, dweight
    return dx, dweight, dy.sum(axis=(0, 1))  # [ops:conv1d-back]


class Conv2dCache(NamedTuple):
    xp: np.ndarray  # (B, C_in, T + 2pT, F + 2pF) masked, zero-padded input; im2col recomputed in backward
    weight: np.ndarray  # (C_out, C_in, KT, KF)
    out_mask: np.ndarray  # (B, 1, T_out, 1) valid output frames, as x.dtype
    in_mask: np.ndarray  # (B, 1, T, 1) valid input frames, as x.dtype
    idx_t: np.ndarray  # (T_out, KT) int, padded time index read by output t, tap kt
    idx_f: np.ndarray  # (F_out, KF) int, padded frequency index read by output f, tap kf
    padding: Tuple[int, int]  # (pT, pF)
    in_shape: Tuple[int, int, int, int]  # (B, C_in, T, F)
    has_bias: bool


def conv2d_forward(x: np.ndarray, weight: np.ndarray, bias: Optional[np.ndarray] = None, *, lengths=None,
                   stride=1, padding=0):
    """``y[b, o, t, f] = bias[o] + sum_{c, i, j} w[o, c, i, j] x[b, c, t sT - pT + i, f sF - pF + j]``.

    x : (B, C_in, T, F) channels-first; weight : (C_out, C_in, KT, KF); bias : (C_out,) or None;
    lengths : (B,) valid frames along T; stride, padding : int or (time, freq) pair.
    Returns ``(y (B, C_out, T_out, F_out), out_lengths (B,), cache)``.
    """
    x = float_array("x", x, ndim=4)
    B, C_in, T, F = x.shape
    weight = float_array("weight", weight, ndim=4)
    C_out, _, KT, KF = weight.shape
    if weight.shape[1] != C_in:
        raise ValueError(f"weight: expected shape ({C_out}, {C_in}, KT, KF) for C_in={C_in}, "
                         f"got {weight.shape}")
    if bias is not None:
        bias = float_array("bias", bias, ndim=1, shape=(C_out,))
    same_dtype(x=x, weight=weight, bias=bias)
    sT, sF = _pair("stride", stride, 1)
    pT, pF = _pair("padding", padding, 0)
    lengths = lengths_array("lengths", lengths, B, T)
    T_out, F_out = (T + 2 * pT - KT) // sT + 1, (F + 2 * pF - KF) // sF + 1  # [ops:conv-lengths]
    if T_out < 1 or F_out < 1:
        raise ValueError(f"x: (T, F)=({T}, {F}) is too small for kernel ({KT}, {KF}) "
                         f"with padding ({pT}, {pF})")
    out_lengths = conv_out_lengths(lengths, KT, sT, pT)
    in_mask = length_mask(lengths, T)[:, None, :, None].astype(x.dtype)  # (B, 1, T, 1)
    out_mask = length_mask(out_lengths, T_out)[:, None, :, None].astype(x.dtype)  # (B, 1, T_out, 1)
    xp = np.zeros((B, C_in, T + 2 * pT, F + 2 * pF), dtype=x.dtype)
    xp[:, :, pT:pT + T, pF:pF + F] = np.where(in_mask > 0, x, 0.0)  # frames past the length become zeros
    idx_t = np.arange(T_out)[:, None] * sT + np.arange(KT)[None, :]  # (T_out, KT)
    idx_f = np.arange(F_out)[:, None] * sF + np.arange(KF)[None, :]  # (F_out, KF)
    cols = _im2col_2d(xp, idx_t, idx_f)  # (B*T_out*F_out, C_in*KT*KF)  [ops:conv2d]
    y = cols @ weight.reshape(C_out, -1).T  # (B*T_out*F_out, C_out): one matmul  [ops:conv2d]
    if bias is not None:
        y = y + bias  # [ops:conv2d]
    y = y.reshape(B, T_out, F_out, C_out).transpose(0, 3, 1, 2) * out_mask  # (B, C_out, T_out, F_out)
    return y, out_lengths, Conv2dCache(xp, weight, out_mask, in_mask, idx_t, idx_f, (pT, pF),
                                       (B, C_in, T, F), bias is not None)


def conv2d_backward(dout: np.ndarray, cache: Conv2dCache):
    """``(dx (B, C_in, T, F), dweight (C_out, C_in, KT, KF), dbias (C_out,))``  [ops:conv2d-back].

    dbias is left out when the forward had no bias.
    """
    xp, weight, out_mask, in_mask = cache.xp, cache.weight, cache.out_mask, cache.in_mask
    idx_t, idx_f = cache.idx_t, cache.idx_f
    pT, pF = cache.padding
    B, C_in, T, F = cache.in_shape
    has_bias = cache.has_bias
    cols = _im2col_2d(xp, idx_t, idx_f)  # recomputed (see Conv2dCache)
    C_out, _, KT, KF = weight.shape
    T_out, F_out = idx_t.shape[0], idx_f.shape[0]
    dout = float_array("dout", dout, shape=(B, C_out, T_out, F_out))
    dy = np.where(out_mask > 0, dout, 0.0)  # invalid output frames were constant 0
    dym = dy.transpose(0, 2, 3, 1).reshape(B * T_out * F_out, C_out)
    dweight = (dym.T @ cols).reshape(weight.shape)  # [ops:conv2d-back]
    dcols = (dym @ weight.reshape(C_out, -1)).reshape(B, T_out, F_out, C_in, KT, KF)  # [ops:conv2d-back]
    dxp = np.zeros((B, C_in, T + 2 * pT, F + 2 * pF), dtype=dcols.dtype)
    sT = int(idx_t[1, 0] - idx_t[0, 0]) if T_out > 1 else 1  # strides recovered from the index tables
    sF = int(idx_f[1, 0] - idx_f[0, 0]) if F_out > 1 else 1
    for i in range(KT):  # col2im: one strided scatter-add per kernel tap (i, j)
        for j in range(KF):
            ti = slice(idx_t[0, i], idx_t[-1, i] + 1, sT)  # times t sT + i, t = 0 .. T_out - 1
            fj = slice(idx_f[0, j], idx_f[-1, j] + 1, sF)  # frequencies f sF + j
            tap = dcols[:, :, :, :, i, j].transpose(0, 3, 1, 2)  # (B, C_in, T_out, F_out)
            dxp[:, :, ti, fj] += tap  # no repeated (t, f) within one tap  [ops:conv2d-back]
    dx = dxp[:, :, pT:pT + T, pF:pF + F] * in_mask
    if not has_bias:
        return dx, dweight
    return dx, dweight, dy.sum(axis=(0, 2, 3))  # [ops:conv2d-back]
