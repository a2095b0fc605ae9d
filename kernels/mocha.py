"""Numba kernels for monotonic attention (exact recursion) and MoChA chunk weights.

NumPy twins (same arguments, same results, float64 1e-10 relative):
``scratchasr.ops.mocha._recursive_forward_numpy``, ``_recursive_backward_numpy``,
``_chunk_forward_numpy``, ``_chunk_backward_numpy``. Equations: docs/equations/mocha.md
[mocha:q-rec] [mocha:alpha-rec] [mocha:dq-rec] [mocha:dp-rec] [mocha:chunk-max] [mocha:chunk-softmax]
[mocha:beta] [mocha:dalpha-chunk] [mocha:du-chunk].

The public wrappers validate, zero the padding, cast to float64 and allocate; these only loop.
Each batch row is owned by one ``prange`` iteration, so results never depend on the thread count.
Frames ``j >= lengths[b]`` are never read and are written as 0.
"""

from __future__ import annotations

import math

from ._njit import njit, prange


@njit(parallel=True)
def monotonic_recursive_forward_kernel(p, alpha_prev, lengths, alpha, q):
    """Exact expected alignment. Twin: ``scratchasr.ops.mocha._recursive_forward_numpy``.

    p, alpha_prev (B, T) float64; lengths (B,) int64. Fills alpha (B, T) and q (B, T), the
    probability of *reaching* frame j (q_j = (1 - p_{j-1}) q_{j-1} + alpha_prev_j).
    """
    B, T = p.shape
    for b in prange(B):
        L = lengths[b]
        carry = 0.0  # (1 - p_{j-1}) q_{j-1}: mass that walked past frame j-1
        for j in range(T):
            if j < L:
                qj = carry + alpha_prev[b, j]  # [mocha:q-rec]
                q[b, j] = qj
                alpha[b, j] = p[b, j] * qj  # [mocha:alpha-rec]
                carry = (1.0 - p[b, j]) * qj
            else:
                q[b, j] = 0.0
                alpha[b, j] = 0.0


@njit(parallel=True)
def monotonic_recursive_backward_kernel(dalpha, p, q, lengths, dp, dalpha_prev):
    """Backward of the recursion. Twin: ``scratchasr.ops.mocha._recursive_backward_numpy``.

    dalpha, p, q (B, T) float64; lengths (B,). Fills dp and dalpha_prev (B, T) with the reverse
    recursion g_j = p_j dalpha_j + (1 - p_j) g_{j+1}, dp_j = q_j (dalpha_j - g_{j+1}), dalpha_prev_j = g_j.
    """
    B, T = p.shape
    for b in prange(B):
        L = lengths[b]
        for j in range(L, T):
            dp[b, j] = 0.0
            dalpha_prev[b, j] = 0.0
        g_next = 0.0  # dL/dq_{j+1}; nothing flows back from past the last valid frame
        for j in range(L - 1, -1, -1):
            dp[b, j] = q[b, j] * (dalpha[b, j] - g_next)  # [mocha:dp-rec]
            g = p[b, j] * dalpha[b, j] + (1.0 - p[b, j]) * g_next  # [mocha:dq-rec]
            dalpha_prev[b, j] = g
            g_next = g


@njit(parallel=True)
def mocha_chunk_forward_kernel(alpha, u, lengths, w, beta, S):
    """Chunkwise weights. Twin: ``scratchasr.ops.mocha._chunk_forward_numpy``.

    alpha, u (B, T) float64; lengths (B,); w chunk size. Fills S (B, T, w), where S[b, k, i] is
    the softmax weight of frame k - w + 1 + i inside the chunk that ends at frame k (0 for frames
    before the start), and beta (B, T) = sum over chunks k covering j of alpha_k * weight.
    """
    B, T = alpha.shape
    for b in prange(B):
        L = lengths[b]
        for j in range(T):
            beta[b, j] = 0.0
            for i in range(w):
                S[b, j, i] = 0.0
        for k in range(L):
            lo = k - w + 1
            m = -math.inf
            for i in range(w):
                if lo + i >= 0 and u[b, lo + i] > m:
                    m = u[b, lo + i]  # [mocha:chunk-max]
            Z = 0.0
            for i in range(w):
                if lo + i >= 0:
                    ex = math.exp(u[b, lo + i] - m)
                    S[b, k, i] = ex
                    Z += ex
            for i in range(w):
                if lo + i >= 0:
                    S[b, k, i] = S[b, k, i] / Z  # [mocha:chunk-softmax]
                    beta[b, lo + i] += alpha[b, k] * S[b, k, i]  # [mocha:beta]


@njit(parallel=True)
def mocha_chunk_backward_kernel(dbeta, alpha, S, beta, lengths, w, dalpha, du):
    """Backward of the chunk weights. Twin: ``scratchasr.ops.mocha._chunk_backward_numpy``.

    dbeta, alpha, beta (B, T), S (B, T, w) from the forward. Fills dalpha (B, T) and du (B, T):
    dalpha_k = sum_i S[k, i] dbeta_{k-w+1+i};  du_l = beta_l dbeta_l - sum_k alpha_k S[k, l] dalpha_k.
    """
    B, T = alpha.shape
    for b in prange(B):
        L = lengths[b]
        for j in range(T):
            dalpha[b, j] = 0.0
            du[b, j] = 0.0
        for j in range(L):
            du[b, j] = beta[b, j] * dbeta[b, j]
        for k in range(L):
            lo = k - w + 1
            acc = 0.0
            for i in range(w):
                if lo + i >= 0:
                    acc += S[b, k, i] * dbeta[b, lo + i]  # [mocha:dalpha-chunk]
            dalpha[b, k] = acc
            for i in range(w):
                if lo + i >= 0:
                    du[b, lo + i] -= alpha[b, k] * S[b, k, i] * acc  # [mocha:du-chunk]
