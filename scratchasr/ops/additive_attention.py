"""Additive (Bahdanau) and location-aware (Chorowski) attention, one decoder step at a time.

References: Bahdanau, Cho & Bengio 2015, "Neural machine translation by jointly learning to align
and translate" (additive energy ``w^T tanh(W s + V h)``); Chorowski, Bahdanau, Serdyuk, Cho & Bengio
2015, "Attention-based models for speech recognition" (location features ``f = F * alpha_prev``,
energy ``w^T tanh(W s + V h + U f + b)``, and "smoothing": ``sigmoid`` instead of ``exp``).
Equations and backward: docs/equations/attention.md.

The memory projection ``keys = h V^T + b`` does not change across decoder steps, so the caller
computes it once (a linear op over all frames) and passes ``keys``; these pairs do the per-step work.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

import numpy as np

from .._validate import float_array, lengths_array, length_mask, same_dtype
from .attention import masked_softmax, masked_softmax_backward

__all__ = ["additive_attention_forward", "additive_attention_backward", "location_attention_forward",
           "location_attention_backward", "AdditiveAttentionCache"]


class AdditiveAttentionCache(NamedTuple):
    query: np.ndarray  # (B, Dq) decoder state
    values: np.ndarray  # (B, T, Dv) memory, zeroed at padded frames
    valid: np.ndarray  # (B, T) bool
    W_q: np.ndarray  # (A, Dq)
    w: np.ndarray  # (A,)
    z: np.ndarray  # (B, T, A) tanh of the energy pre-activation
    alpha: np.ndarray  # (B, T) attention weights
    sig: Optional[np.ndarray]  # (B, T) sigmoid(e) when smoothing, else None
    windows: Optional[np.ndarray]  # (B, T, K) alpha_prev windows of the location conv, None if no location
    f: Optional[np.ndarray]  # (B, T, C) location features
    F: Optional[np.ndarray]  # (C, K) location filters
    U: Optional[np.ndarray]  # (A, C) location projection


def _step_forward(query, keys, values, lengths, W_q, w, alpha_prev, F, U, smoothing):
    float_array("query", query, ndim=2)
    B, Dq = query.shape
    float_array("keys", keys, shape=(B, None, None))
    T, A = keys.shape[1:]
    float_array("values", values, shape=(B, T, None))
    float_array("W_q", W_q, shape=(A, Dq))
    float_array("w", w, shape=(A,))
    valid = length_mask(lengths_array("lengths", lengths, B, T), T)  # (B, T)
    m = valid[:, :, None]
    keys = np.where(m, keys, 0)  # padded frames never reach the arithmetic (NaN-safe)
    values = np.where(m, values, 0)
    pre = (query @ W_q.T)[:, None, :] + keys  # (B, T, A) [attn:additive-energy]
    windows = f = None
    if F is not None:
        float_array("alpha_prev", alpha_prev, shape=(B, T))
        float_array("F", F, ndim=2)
        C, K = F.shape
        if K % 2 == 0:
            raise ValueError(f"F: expected an odd kernel width (centred 'same' convolution), got {K}")
        float_array("U", U, shape=(A, C))
        same_dtype(query=query, keys=keys, values=values, W_q=W_q, w=w, alpha_prev=alpha_prev, F=F, U=U)
        # BEGIN ASSIGNMENT A4 points=1
        a_pad = np.pad(np.where(valid, alpha_prev, 0), ((0, 0), (K // 2, K // 2)))  # (B, T + K - 1)
        windows = np.lib.stride_tricks.sliding_window_view(a_pad, K, axis=1)  # (B, T, K)
        f = windows @ F.T  # (B, T, C) [attn:location-conv]
        pre = pre + f @ U.T  # [attn:location-energy]
        # END ASSIGNMENT
    else:
        same_dtype(query=query, keys=keys, values=values, W_q=W_q, w=w)
    # BEGIN ASSIGNMENT A4 points=1
    z = np.tanh(pre)
    e = z @ w  # (B, T) energies
    sig = None
    if smoothing:
        sig = np.where(valid, 1.0 / (1.0 + np.exp(-np.where(valid, e, 0))), 0)  # [attn:smooth]
        Z = sig.sum(axis=1, keepdims=True)
        alpha = sig / np.where(Z > 0, Z, 1)
    else:
        alpha = masked_softmax(e, valid)  # [attn:softmax]
    context = np.einsum("bt,btd->bd", alpha, values)  # (B, Dv) [attn:context]
    # END ASSIGNMENT
    alpha = alpha.astype(query.dtype, copy=False)
    cache = AdditiveAttentionCache(query, values, valid, W_q, w, z, alpha, sig, windows, f, F, U)
    return context, cache.alpha, cache


def _step_backward(dcontext, cache, dalpha):
    query, values, valid, W_q, w, z = cache.query, cache.values, cache.valid, cache.W_q, cache.w, cache.z
    alpha, sig, windows, f, F, U = cache.alpha, cache.sig, cache.windows, cache.f, cache.F, cache.U
    B, T, Dv = values.shape
    float_array("dcontext", dcontext, shape=(B, Dv))
    dalpha = np.zeros_like(alpha) if dalpha is None else np.where(valid, float_array("dalpha", dalpha,
                                                                                      shape=(B, T)), 0)
    # BEGIN ASSIGNMENT A4 points=3
    dvalues = alpha[:, :, None] * dcontext[:, None, :]  # [attn:dcontext]
    dalpha = dalpha + np.einsum("btd,bd->bt", values, dcontext)
    if sig is not None:
        Z = sig.sum(axis=1, keepdims=True)
        dsig = (dalpha - np.sum(dalpha * alpha, axis=1, keepdims=True))  # [attn:dsmooth]
        dsig /= np.where(Z > 0, Z, 1)
        de = np.where(valid, dsig * sig * (1 - sig), 0)
    else:
        de = masked_softmax_backward(dalpha, alpha)  # [attn:dsoftmax]
    dw = np.einsum("bt,bta->a", de, z)  # [attn:dadditive]
    dpre = de[:, :, None] * w * (1 - z * z)  # (B, T, A), zero at padded frames
    dq_proj = dpre.sum(axis=1)  # (B, A): the query projection is shared by all frames
    dquery, dW_q = dq_proj @ W_q, dq_proj.T @ query
    grads = [dquery, dpre, dvalues]
    if F is None:
        return (*grads, dW_q, dw)
    K = F.shape[1]
    df = dpre @ U  # (B, T, C)
    dU = np.einsum("bta,btc->ac", dpre, f)  # [attn:dlocation]
    dF = np.einsum("btc,btk->ck", df, windows)
    dwin = df @ F  # (B, T, K)
    dpad = np.zeros((B, T + K - 1), dtype=dwin.dtype)
    for k in range(K):  # transpose of the sliding window: each window tap scatters back to its frame
        dpad[:, k:k + T] += dwin[:, :, k]
    dalpha_prev = np.where(valid, dpad[:, K // 2:K // 2 + T], 0)
    return (*grads, dalpha_prev, dW_q, dw, dF, dU)
    # END ASSIGNMENT


def additive_attention_forward(query: np.ndarray, keys: np.ndarray, values: np.ndarray, lengths,
                               W_q: np.ndarray, w: np.ndarray, *, smoothing: bool = False
                               ) -> Tuple[np.ndarray, np.ndarray, AdditiveAttentionCache]:
    """Content-based additive attention for one decoder step.

    query (B, Dq) decoder state; keys (B, T, A) projected memory ``h V^T + b``; values (B, T, Dv)
    memory; lengths (B,); W_q (A, Dq); w (A,) -> context (B, Dv), alpha (B, T), cache.
    ``smoothing=True`` normalises sigmoids instead of exponentials. [attn:additive-energy] [attn:context]
    """
    return _step_forward(query, keys, values, lengths, W_q, w, None, None, None, smoothing)


def additive_attention_backward(dcontext: np.ndarray, cache: AdditiveAttentionCache,
                                dalpha: Optional[np.ndarray] = None) -> Tuple[np.ndarray, ...]:
    """dcontext (B, Dv), optional dalpha (B, T) -> dquery, dkeys, dvalues, dW_q, dw. [attn:dadditive]"""
    return _step_backward(dcontext, cache, dalpha)


def location_attention_forward(query: np.ndarray, keys: np.ndarray, values: np.ndarray,
                               alpha_prev: np.ndarray, lengths, W_q: np.ndarray, w: np.ndarray, F: np.ndarray,
                               U: np.ndarray, *, smoothing: bool = False
                               ) -> Tuple[np.ndarray, np.ndarray, AdditiveAttentionCache]:
    """Location-aware attention for one decoder step (Chorowski et al. 2015).

    As ``additive_attention_forward`` plus alpha_prev (B, T) the previous step's weights, F (C, K)
    convolution filters (K odd, centred) and U (A, C) -> context (B, Dv), alpha (B, T), cache.
    [attn:location-conv] [attn:location-energy] [attn:smooth]
    """
    if F is None or U is None:
        raise TypeError("F, U: location-aware attention needs filters F (C, K) and projection U (A, C)")
    return _step_forward(query, keys, values, lengths, W_q, w, alpha_prev, F, U, smoothing)


def location_attention_backward(dcontext: np.ndarray, cache: AdditiveAttentionCache,
                                dalpha: Optional[np.ndarray] = None) -> Tuple[np.ndarray, ...]:
    """dcontext (B, Dv), optional dalpha (B, T) ->
    dquery, dkeys, dvalues, dalpha_prev, dW_q, dw, dF, dU. [attn:dlocation]"""
    return _step_backward(dcontext, cache, dalpha)
