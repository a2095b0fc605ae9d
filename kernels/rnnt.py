"""RNN-T loss kernels: per-node log-softmax normaliser, log-space lattice alpha/beta, fused gradient.

Graves 2012 (arXiv:1211.3711) lattice; the fused ("function merging") gradient of Li et al. 2019
(arXiv:1909.12415, section 3.2); FastEmit (Yu et al. 2021, arXiv:2010.11148) and gradient clamping
as in torchaudio/NeMo. NumPy twins (same arguments, same results):
``scratchasr.losses.rnnt._rnnt_forward_numpy`` and ``scratchasr.losses.rnnt._rnnt_backward_numpy``.
Equation tags: docs/equations/rnnt.md [rnnt:log-softmax] [rnnt:alpha-rec] [rnnt:loglik]
[rnnt:beta-rec] [rnnt:grad] [rnnt:fastemit] [rnnt:clamp].

Layout: ``logits (B, T, U+1, V)`` float32/float64; every per-node array is ``(B, T, U+1)``. Only
nodes ``t < logit_lengths[b]``, ``u <= target_lengths[b]`` are read. The logits are read exactly twice
(once in the forward kernel for the normaliser, once in the backward kernel to write the gradient);
the extra memory is the handful of ``(B, T, U+1)`` arrays, never another ``(B, T, U+1, V)`` one.
Rows (t) and columns (u) are visited in storage order, so the inner loop over V is contiguous.
"""

from __future__ import annotations

import math

import numpy as np

from ._njit import njit, prange

NEG_INF = -np.inf


LOG2E = 1.4426950408889634
LN2_HI = 0.693145751953125  # ln 2 split in two (Cody-Waite): n * LN2_HI is exact for |n| < 2**11
LN2_LO = 1.42860682030941723212e-6


@njit(fastmath={"nsz", "arcp", "contract"})  # no "reassoc": it would merge the two halves of ln 2
def _exp_parts(z):
    """exp(z) = p * 2**n for z <= 0 as plain arithmetic LLVM can vectorise [rnnt:exp-poly].

    z = n ln2 + f with |f| <= ln2 / 2, exp(f) by its degree-12 Taylor polynomial (relative error
    below 2e-16, float64). Returns p = 0 for z < -708 (exp(z) < 3e-308, the denormal range), so
    exp(-inf) is exactly 0. The caller forms 2**n from exponent bits: ((n + 1023) << 52) as float64.
    """
    zc = max(z, -708.0)
    n = np.floor(zc * LOG2E + 0.5)
    f = zc - n * LN2_HI - n * LN2_LO
    p = 1.0 + f * (1.0 + f * (0.5 + f * (1.0 / 6 + f * (1.0 / 24 + f * (1.0 / 120 + f * (1.0 / 720 + f * (
        1.0 / 5040 + f * (1.0 / 40320 + f * (1.0 / 362880 + f * (1.0 / 3628800 + f * (1.0 / 39916800 + f * (
            1.0 / 479001600))))))))))))
    if z < -708.0:
        p = 0.0
    return p, n


@njit
def _log_add(a, b):
    """log(exp(a) + exp(b)) with -inf as log 0 (never NaN for two -inf)."""
    if a == NEG_INF:
        return b
    if b == NEG_INF:
        return a
    if a > b:
        return a + math.log1p(math.exp(b - a))
    return b + math.log1p(math.exp(a - b))


@njit(parallel=True)
def rnnt_forward_kernel(logits, targets, logit_lengths, target_lengths, blank, row_max, log_Z, log_blank,
                        log_emit, log_alpha, log_beta, log_like):
    """Fill row_max (logits dtype), log_Z, log_blank, log_emit, log_alpha, log_beta (B, T, U+1), log_like.

    log_like (B, 2): [b, 0] = log P(y|x) from alpha [rnnt:loglik], [b, 1] = log beta(0, 0). Arrays
    are pre-filled with -inf by the caller; only valid nodes are written. Twin: ``_rnnt_forward_numpy``.
    """
    B, _, _, V = logits.shape
    for b in prange(B):
        Tb = logit_lengths[b]
        Ub = target_lengths[b]
        bits = np.empty(V, dtype=np.int64)  # scratch: 2**n for _exp_parts ...
        ex = bits.view(np.float64)  # ... reinterpreted in place as the float64 exponentials
        for t in range(Tb):
            for u in range(Ub + 1):
                m = logits[b, t, u, 0]  # normaliser of node (t, u) [rnnt:log-softmax]
                for v in range(1, V):
                    if logits[b, t, u, v] > m:
                        m = logits[b, t, u, v]
                m64 = np.float64(m)
                acc = 0.0  # float64 exponentials and accumulation whatever the input dtype
                for v in range(V):
                    p, n = _exp_parts(np.float64(logits[b, t, u, v]) - m64)
                    bits[v] = (np.int64(n) + 1023) << 52
                    ex[v] = p * ex[v]
                    acc += ex[v]
                lz = m64 + math.log(acc)
                row_max[b, t, u] = m
                log_Z[b, t, u] = lz
                log_blank[b, t, u] = logits[b, t, u, blank] - lz  # log blank(t, u)
                if u < Ub:
                    log_emit[b, t, u] = logits[b, t, u, targets[b, u]] - lz  # log y(t, u)
        for t in range(Tb):  # alpha, row by row [rnnt:alpha-rec]
            for u in range(Ub + 1):
                if t == 0 and u == 0:
                    log_alpha[b, 0, 0] = 0.0
                    continue
                a = NEG_INF
                if t > 0:
                    a = log_alpha[b, t - 1, u] + log_blank[b, t - 1, u]
                if u > 0:
                    a = _log_add(a, log_alpha[b, t, u - 1] + log_emit[b, t, u - 1])
                log_alpha[b, t, u] = a
        log_like[b, 0] = log_alpha[b, Tb - 1, Ub] + log_blank[b, Tb - 1, Ub]  # [rnnt:loglik]
        for t in range(Tb - 1, -1, -1):  # beta, row by row from the end [rnnt:beta-rec]
            for u in range(Ub, -1, -1):
                if t == Tb - 1 and u == Ub:
                    log_beta[b, t, u] = log_blank[b, t, u]
                    continue
                a = NEG_INF
                if t < Tb - 1:
                    a = log_beta[b, t + 1, u] + log_blank[b, t, u]
                if u < Ub:
                    a = _log_add(a, log_beta[b, t, u + 1] + log_emit[b, t, u])
                log_beta[b, t, u] = a
        log_like[b, 1] = log_beta[b, 0, 0]


@njit(parallel=True)
def rnnt_backward_kernel(logits, targets, logit_lengths, target_lengths, blank, row_max, log_Z, log_blank,
                         log_emit, log_alpha, log_beta, log_like, scale, fastemit_lambda, clamp, dlogits):
    """Write every element of dlogits (B, T, U+1, V): scale[b] * dL_b/dlogits at valid nodes, 0 elsewhere.

    At node (t, u): softmax * (occupancy + lambda * emit-occupancy) - blank-occupancy at the blank -
    (1 + lambda) * emit-occupancy at y_{u+1} [rnnt:grad] [rnnt:fastemit], each entry clipped to
    [-clamp, clamp] when clamp > 0 [rnnt:clamp]. Twin: ``_rnnt_backward_numpy``.
    """
    B, T, U1, V = logits.shape
    for b in prange(B):
        Tb = logit_lengths[b]
        Ub = target_lengths[b]
        ll = log_like[b, 0]
        sc = scale[b]
        live = sc != 0.0 and ll != NEG_INF
        bits = np.empty(V, dtype=np.int64)  # scratch: 2**n for _exp_parts ...
        ex = bits.view(np.float64)  # ... reinterpreted in place as exp(x_v - m)
        for t in range(T):
            for u in range(U1):
                if not live or t >= Tb or u > Ub:  # padding (or nothing to propagate): exact zeros
                    for v in range(V):
                        dlogits[b, t, u, v] = 0.0
                    continue
                la = log_alpha[b, t, u]
                occ = math.exp(la + log_beta[b, t, u] - ll)  # P(path visits (t, u)) / P
                if t < Tb - 1:
                    g_blank = math.exp(la + log_blank[b, t, u] + log_beta[b, t + 1, u] - ll)
                elif u == Ub:
                    g_blank = math.exp(la + log_blank[b, t, u] - ll)  # the final blank
                else:
                    g_blank = 0.0
                g_emit = 0.0
                lab = -1
                if u < Ub:
                    lab = targets[b, u]
                    g_emit = math.exp(la + log_emit[b, t, u] + log_beta[b, t, u + 1] - ll)
                m = np.float64(row_max[b, t, u])
                for v in range(V):
                    p, n = _exp_parts(np.float64(logits[b, t, u, v]) - m)
                    bits[v] = (np.int64(n) + 1023) << 52
                    ex[v] = p * ex[v]
                coef = (occ + fastemit_lambda * g_emit) * math.exp(m - log_Z[b, t, u])  # / sum_v exp(x_v - m)
                if clamp > 0.0:
                    for v in range(V):
                        g = ex[v] * coef
                        if v == blank:
                            g -= g_blank
                        elif v == lab:
                            g -= (1.0 + fastemit_lambda) * g_emit
                        g = min(max(g, -clamp), clamp)  # [rnnt:clamp]
                        dlogits[b, t, u, v] = g * sc
                else:
                    c2 = coef * sc
                    for v in range(V):  # branch-free hot loop: softmax * occupancy [rnnt:grad]
                        dlogits[b, t, u, v] = ex[v] * c2
                    dlogits[b, t, u, blank] = (ex[blank] * coef - g_blank) * sc
                    if lab >= 0:  # [rnnt:fastemit]
                        g = ex[lab] * coef - (1.0 + fastemit_lambda) * g_emit
                        dlogits[b, t, u, lab] = g * sc
