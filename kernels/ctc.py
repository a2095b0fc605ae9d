"""CTC loss kernels: log-softmax normaliser, log-space alpha/beta, fused gradient (Graves et al. 2006).

NumPy twins (same arguments, same results): ``scratchasr.losses.ctc._ctc_forward_numpy`` and
``scratchasr.losses.ctc._ctc_backward_numpy``. Equation tags: docs/equations/ctc.md
[ctc:extended] [ctc:log-softmax] [ctc:alpha-init] [ctc:alpha-rec] [ctc:loglik] [ctc:beta-init]
[ctc:beta-rec] [ctc:shifted-sum] [ctc:occupancy] [ctc:grad].

Layout: ``logits (B, T, V)`` float32 or float64; the blank-extended label sequence of utterance b
has ``2 * S_b + 1`` states, ``log_alpha``/``log_beta`` are ``(B, T, 2S + 1)`` float64. Only frames
``t < logit_lengths[b]`` and states ``s < 2 * target_lengths[b] + 1`` are read or written, so
whatever sits in the padding (NaN included) never matters. Each batch element is one ``prange``
iteration, so results do not depend on the number of threads.
"""

from __future__ import annotations

import math

import numpy as np

from ._njit import njit, prange

NEG_INF = -np.inf
TINY = 1e-290  # below this a shifted linear-space sum may have lost digits to underflow


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


@njit
def _label(targets, b, s, blank):
    """Label of state s of the extended sequence [ctc:extended]: blank at even s, y_{(s-1)/2} at odd s."""
    if s % 2 == 0:
        return blank
    return targets[b, s // 2]


@njit
def _can_skip(targets, b, s, blank):
    """True when alpha may jump from state s-2 to s: a label state whose label differs from s-2's."""
    return s >= 2 and s % 2 == 1 and targets[b, s // 2] != targets[b, s // 2 - 1]


@njit(parallel=True)
def ctc_forward_kernel(logits, targets, logit_lengths, target_lengths, blank, row_max, log_Z, log_alpha,
                       log_beta, log_like):
    """Fill row_max (B, T) (logits dtype), log_Z (B, T), log_alpha, log_beta (B, T, 2S+1) and log_like (B, 2).

    log_like[b, 0] is log P(y|x) read off alpha [ctc:loglik], log_like[b, 1] the same from beta
    (sum over s of alpha_0(s) beta_0(s)); they agree to round-off. Twin: ``_ctc_forward_numpy``.
    """
    B, _, V = logits.shape
    for b in prange(B):
        Tb = logit_lengths[b]
        Sb = target_lengths[b]
        N = 2 * Sb + 1  # states of the extended sequence [ctc:extended]
        if Tb == 0:  # no frames: only the empty target has an alignment (the empty one)
            log_like[b, 0] = 0.0 if Sb == 0 else NEG_INF
            log_like[b, 1] = log_like[b, 0]
            continue
        bits = np.empty(max(V, 2 * Sb + 1), dtype=np.int64)  # scratch: 2**n for _exp_parts ...
        ex = bits.view(np.float64)  # ... reinterpreted in place as the float64 exponentials
        for t in range(Tb):  # log-softmax normaliser [ctc:log-softmax]
            m = logits[b, t, 0]
            for v in range(1, V):
                if logits[b, t, v] > m:
                    m = logits[b, t, v]
            m64 = np.float64(m)
            acc = 0.0  # float64 exponentials and accumulation whatever the input dtype
            for v in range(V):
                p, n = _exp_parts(np.float64(logits[b, t, v]) - m64)
                bits[v] = (np.int64(n) + 1023) << 52
                ex[v] = p * ex[v]
                acc += ex[v]
            row_max[b, t] = m
            log_Z[b, t] = m64 + math.log(acc)
        ext = np.empty(N, dtype=np.int64)  # l'_s [ctc:extended]
        skip = np.zeros(N, dtype=np.bool_)  # skip[s]: s - 2 -> s allowed
        for s in range(N):
            ext[s] = _label(targets, b, s, blank)
            skip[s] = _can_skip(targets, b, s, blank)
        e = np.empty(N)  # exp(prev - M): the previous frame, shifted by its max, in linear space
        w = np.empty(N)  # beta_{t+1}(s) + log p_{t+1}(l'_s)
        # alpha: forward variables, emission at t included
        for s in range(N):
            log_alpha[b, 0, s] = NEG_INF
        log_alpha[b, 0, 0] = logits[b, 0, blank] - log_Z[b, 0]  # [ctc:alpha-init]
        if N > 1:
            log_alpha[b, 0, 1] = logits[b, 0, ext[1]] - log_Z[b, 0]
        for t in range(1, Tb):
            # [ctc:shifted-sum] logsumexp of 2-3 predecessors as M + log(sum exp(a - M)), one shift M per
            # frame: N exps + N logs per frame instead of a chain of log-adds per state. A state whose
            # predecessors are all below e^-667 of the frame's best is redone exactly in log space.
            M = NEG_INF
            for s in range(N):
                M = max(M, log_alpha[b, t - 1, s])
            if M == NEG_INF:  # nothing reachable (infeasible target): alpha stays -inf
                for s in range(N):
                    log_alpha[b, t, s] = NEG_INF
                continue
            for s in range(N):
                p, n = _exp_parts(log_alpha[b, t - 1, s] - M)
                bits[s] = (np.int64(n) + 1023) << 52
                e[s] = p * ex[s]
            for s in range(N):
                acc = e[s]
                if s >= 1:
                    acc += e[s - 1]
                if skip[s]:
                    acc += e[s - 2]
                if acc > TINY:
                    a = M + math.log(acc)
                else:  # exact log-space fallback
                    a = log_alpha[b, t - 1, s]
                    if s >= 1:
                        a = _log_add(a, log_alpha[b, t - 1, s - 1])
                    if skip[s]:
                        a = _log_add(a, log_alpha[b, t - 1, s - 2])
                log_alpha[b, t, s] = a + (logits[b, t, ext[s]] - log_Z[b, t])  # [ctc:alpha-rec]
        ll = log_alpha[b, Tb - 1, N - 1]
        if N > 1:
            ll = _log_add(ll, log_alpha[b, Tb - 1, N - 2])  # [ctc:loglik]
        log_like[b, 0] = ll
        # beta: backward variables, emission at t excluded
        for s in range(N):
            log_beta[b, Tb - 1, s] = NEG_INF
        log_beta[b, Tb - 1, N - 1] = 0.0  # [ctc:beta-init]
        if N > 1:
            log_beta[b, Tb - 1, N - 2] = 0.0
        for t in range(Tb - 2, -1, -1):
            M = NEG_INF
            for s in range(N):
                w[s] = log_beta[b, t + 1, s] + (logits[b, t + 1, ext[s]] - log_Z[b, t + 1])
                M = max(M, w[s])
            if M == NEG_INF:
                for s in range(N):
                    log_beta[b, t, s] = NEG_INF
                continue
            for s in range(N):
                p, n = _exp_parts(w[s] - M)
                bits[s] = (np.int64(n) + 1023) << 52
                e[s] = p * ex[s]
            for s in range(N):
                acc = e[s]
                if s + 1 < N:
                    acc += e[s + 1]
                if s + 2 < N and skip[s + 2]:
                    acc += e[s + 2]
                if acc > TINY:
                    a = M + math.log(acc)
                else:  # exact log-space fallback
                    a = w[s]
                    if s + 1 < N:
                        a = _log_add(a, w[s + 1])
                    if s + 2 < N and skip[s + 2]:
                        a = _log_add(a, w[s + 2])
                log_beta[b, t, s] = a  # [ctc:beta-rec]
        lb = NEG_INF
        for s in range(N):
            lb = _log_add(lb, log_alpha[b, 0, s] + log_beta[b, 0, s])
        log_like[b, 1] = lb


@njit(parallel=True)
def ctc_backward_kernel(logits, targets, logit_lengths, target_lengths, blank, row_max, log_Z, log_alpha,
                        log_beta, log_like, scale, dlogits):
    """Fill dlogits (B, T, V) (zero-initialised by the caller) with scale[b] * dNLL_b/dlogits [ctc:grad].

    For each valid frame: softmax minus the normalised state occupancy gamma_t(s) summed over the
    states that carry each label [ctc:occupancy]. Utterances with scale 0 or log P = -inf are left at
    0. Twin: ``_ctc_backward_numpy``.
    """
    B, _, V = logits.shape
    for b in prange(B):
        Tb = logit_lengths[b]
        N = 2 * target_lengths[b] + 1
        ll = log_like[b, 0]
        if scale[b] == 0.0 or ll == NEG_INF or Tb == 0:
            continue
        bits = np.empty(V, dtype=np.int64)  # scratch: 2**n for _exp_parts ...
        g = bits.view(np.float64)  # ... then, in place, one float64 gradient row per frame
        for t in range(Tb):
            m64 = np.float64(row_max[b, t])
            inv = math.exp(m64 - log_Z[b, t])  # 1 / sum_v exp(x_v - m)
            for v in range(V):
                p, n = _exp_parts(np.float64(logits[b, t, v]) - m64)
                bits[v] = (np.int64(n) + 1023) << 52
                g[v] = p * g[v] * inv  # softmax [ctc:log-softmax]
            for s in range(N):
                gamma = math.exp(log_alpha[b, t, s] + log_beta[b, t, s] - ll)  # [ctc:occupancy]
                g[_label(targets, b, s, blank)] -= gamma
            for v in range(V):
                dlogits[b, t, v] = g[v] * scale[b]  # [ctc:grad]
