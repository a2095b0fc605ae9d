"""Connectionist temporal classification: loss, fused gradient, Viterbi forced alignment.

References: Graves, Fernandez, Gomez, Schmidhuber 2006, "Connectionist Temporal Classification"
(ICML); Graves 2012, "Supervised Sequence Labelling with Recurrent Neural Networks", ch. 7.
Derivations: docs/equations/ctc.md. Numba twin: kernels/ctc.py.

The readable NumPy recursion below loops over utterances and frames and is vectorised over the
``2S + 1`` states of the blank-extended label sequence. Everything log-domain is float64.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from .._backend import dispatch
from .._validate import float_array, lengths_array
from ..kernels.ctc import ctc_backward_kernel, ctc_forward_kernel
from ._checks import (check_blank, check_finite_logits, check_options, check_targets, loss_scale,
                      reduce_loss)

NEG_INF = -np.inf


def _extended(targets_b: np.ndarray, blank: int):
    """Blank-extended labels l' = (blank, y1, blank, y2, ..., yS, blank) [ctc:extended] and the skip mask.

    skip[s] is True where alpha may jump from s - 2 to s: a label state whose label differs from
    the label two states back (between two equal labels the blank is compulsory).
    """
    S = targets_b.shape[0]
    ext = np.full(2 * S + 1, blank, dtype=np.int64)  # (2S+1,)
    ext[1::2] = targets_b
    skip = np.zeros(2 * S + 1, dtype=bool)  # (2S+1,)
    skip[3::2] = targets_b[1:] != targets_b[:-1]
    return ext, skip


def _shift(a: np.ndarray, k: int) -> np.ndarray:
    """a shifted right by k states, -inf filled in: out[s] = a[s - k]."""
    out = np.full_like(a, NEG_INF)
    out[k:] = a[:a.shape[0] - k]
    return out


def _ctc_forward_numpy(logits, targets, logit_lengths, target_lengths, blank, row_max, log_Z, log_alpha,
                       log_beta, log_like):
    """Readable twin of ``kernels.ctc.ctc_forward_kernel`` (same arguments, fills the same arrays)."""
    B = logits.shape[0]
    for b in range(B):
        Tb, Sb = int(logit_lengths[b]), int(target_lengths[b])
        if Tb == 0:  # no frames: only the empty target can be produced
            log_like[b] = 0.0 if Sb == 0 else NEG_INF
            continue
        x = logits[b, :Tb]  # (Tb, V), padding frames never read
        m = x.max(axis=1)  # (Tb,)
        row_max[b, :Tb] = m
        m = m.astype(np.float64)  # exponentials and sums in float64 whatever the input dtype
        log_Z[b, :Tb] = m + np.log(np.exp(x - m[:, None]).sum(axis=1))  # [ctc:log-softmax]
        ext, skip = _extended(targets[b, :Sb], blank)  # (N,), N = 2Sb+1
        N = ext.shape[0]
        log_y = x[:, ext].astype(np.float64) - log_Z[b, :Tb, None]  # (Tb, N) log p_t(l'_s)
        # BEGIN ASSIGNMENT A3 points=4
        a = np.full(N, NEG_INF)
        a[:min(N, 2)] = log_y[0, :min(N, 2)]  # [ctc:alpha-init]
        log_alpha[b, 0, :N] = a
        for t in range(1, Tb):
            a2 = np.where(skip, _shift(a, 2), NEG_INF)
            a = np.logaddexp(np.logaddexp(a, _shift(a, 1)), a2) + log_y[t]  # [ctc:alpha-rec]
            log_alpha[b, t, :N] = a
        log_like[b, 0] = np.logaddexp.reduce(a[max(N - 2, 0):])  # [ctc:loglik]
        # END ASSIGNMENT
        # BEGIN ASSIGNMENT A3 points=3
        beta = np.full(N, NEG_INF)
        beta[max(N - 2, 0):] = 0.0  # [ctc:beta-init]
        log_beta[b, Tb - 1, :N] = beta
        skip_from = np.zeros(N, dtype=bool)  # skip_from[s]: s -> s + 2 allowed (= skip[s + 2])
        skip_from[:N - 2] = skip[2:]
        for t in range(Tb - 2, -1, -1):
            nxt = beta + log_y[t + 1]  # (N,) beta_{t+1}(s') p_{t+1}(l'_s')
            up1 = np.full(N, NEG_INF)
            up1[:N - 1] = nxt[1:]
            up2 = np.full(N, NEG_INF)
            up2[:N - 2] = nxt[2:]
            beta = np.logaddexp(np.logaddexp(nxt, up1), np.where(skip_from, up2, NEG_INF))  # [ctc:beta-rec]
            log_beta[b, t, :N] = beta
        log_like[b, 1] = np.logaddexp.reduce(log_alpha[b, 0, :N] + beta)
        # END ASSIGNMENT


def _ctc_backward_numpy(logits, targets, logit_lengths, target_lengths, blank, row_max, log_Z, log_alpha,
                        log_beta, log_like, scale, dlogits):
    """Readable twin of ``kernels.ctc.ctc_backward_kernel``: dlogits = scale * (softmax - occupancy)."""
    B = logits.shape[0]
    for b in range(B):
        Tb, Sb = int(logit_lengths[b]), int(target_lengths[b])
        ll = log_like[b, 0]
        if scale[b] == 0.0 or ll == NEG_INF or Tb == 0:
            continue
        x = logits[b, :Tb]  # (Tb, V)
        m = row_max[b, :Tb].astype(np.float64)  # (Tb,)
        # BEGIN ASSIGNMENT A3 points=4
        inv = np.exp(m - log_Z[b, :Tb])  # (Tb,) 1 / sum_v exp(x - m)
        g = np.exp(x - m[:, None]) * inv[:, None]  # (Tb, V) float64 softmax
        ext, _ = _extended(targets[b, :Sb], blank)
        N = ext.shape[0]
        gamma = np.exp(log_alpha[b, :Tb, :N] + log_beta[b, :Tb, :N] - ll)  # (Tb, N) [ctc:occupancy]
        for s in range(N):  # states sharing a label add up (np.add.at would hide this loop)
            g[:, ext[s]] -= gamma[:, s]
        dlogits[b, :Tb] = g * scale[b]  # [ctc:grad]
        # END ASSIGNMENT


def _prepare(logits, targets, logit_lengths, target_lengths, blank):
    """Validate the inputs shared by ctc_loss and ctc_align; return contiguous int64/float arrays."""
    logits = float_array("logits", logits, ndim=3)
    B, T, V = logits.shape
    blank = check_blank(blank, V)
    targets, target_lengths = check_targets(targets, target_lengths, B, None, V, blank)
    logit_lengths = np.ascontiguousarray(lengths_array("logit_lengths", logit_lengths, B, T))
    check_finite_logits(logits, logit_lengths)
    return np.ascontiguousarray(logits), targets, logit_lengths, target_lengths, blank


# One cache per call of ctc_loss; arrays are the caller's (logits) or freshly allocated, never written later.
class CTCCache(NamedTuple):
    logits: np.ndarray  # (B, T, V) the caller's logits, not copied (recomputing softmax needs them)
    targets: np.ndarray  # (B, S) int64
    logit_lengths: np.ndarray  # (B,) int64
    target_lengths: np.ndarray  # (B,) int64
    blank: int
    row_max: np.ndarray  # (B, T) logits dtype, max over V per frame (shift for exp)
    log_Z: np.ndarray  # (B, T) float64 log-softmax normaliser
    log_alpha: np.ndarray  # (B, T, 2S+1) float64
    log_beta: np.ndarray  # (B, T, 2S+1) float64
    log_like: np.ndarray  # (B, 2) float64 log P(y|x) from alpha and from beta
    reduction: str
    zero_infinity: bool
    backend: str


def ctc_loss(logits: np.ndarray, targets: np.ndarray, logit_lengths: np.ndarray, target_lengths: np.ndarray,
             *, blank: int = 0, reduction: str = "sum", zero_infinity: bool = False,
             backend: Optional[str] = None):
    """CTC negative log-likelihood from unnormalised logits (log-softmax fused) [ctc:loglik].

    logits (B, T, V) float32/float64; targets (B, S) int (labels in [0, V), never ``blank``);
    logit_lengths (B,) in [0, T]; target_lengths (B,) in [0, S]. Returns ``(loss, cache)`` with loss
    of shape (B,) for ``reduction="none"``, else a scalar (``"mean"`` divides the sum by B). An
    utterance with no alignment (T_b < S_b + repeats) gets ``inf``, or 0 with ``zero_infinity``.
    """
    backend = check_options(reduction, backend)
    logits, targets, logit_lengths, target_lengths, blank = _prepare(logits, targets, logit_lengths,
                                                                     target_lengths, blank)
    B, T, V = logits.shape
    N = 2 * targets.shape[1] + 1
    row_max = np.zeros((B, T), dtype=logits.dtype)
    log_Z = np.zeros((B, T))
    log_alpha = np.full((B, T, N), NEG_INF)
    log_beta = np.full((B, T, N), NEG_INF)
    log_like = np.zeros((B, 2))
    fwd = dispatch(backend, _ctc_forward_numpy, ctc_forward_kernel)
    fwd(logits, targets, logit_lengths, target_lengths, blank, row_max, log_Z, log_alpha, log_beta, log_like)
    nll = -log_like[:, 0]  # (B,)
    if zero_infinity:
        nll = np.where(np.isinf(nll), 0.0, nll)
    loss = reduce_loss(nll, reduction, logits.dtype)
    return loss, CTCCache(logits, targets, logit_lengths, target_lengths, blank, row_max, log_Z, log_alpha,
                          log_beta, log_like, reduction, bool(zero_infinity), backend)


def ctc_loss_backward(dloss, cache: CTCCache) -> np.ndarray:
    """dlogits (B, T, V) = dloss_b * (softmax - occupancy / P) [ctc:grad], zero on padding.

    Infeasible utterances (loss ``inf``, or 0 under ``zero_infinity``) get an all-zero gradient.
    """
    B, T, V = cache.logits.shape
    scale = loss_scale(dloss, cache.reduction, B)  # (B,)
    scale[np.isneginf(cache.log_like[:, 0])] = 0.0
    dlogits = np.zeros((B, T, V), dtype=cache.logits.dtype)
    bwd = dispatch(cache.backend, _ctc_backward_numpy, ctc_backward_kernel)
    bwd(cache.logits, cache.targets, cache.logit_lengths, cache.target_lengths, cache.blank, cache.row_max,
        cache.log_Z, cache.log_alpha, cache.log_beta, cache.log_like, scale, dlogits)
    return dlogits


class CTCAlignment(NamedTuple):
    labels: np.ndarray  # (B, T) int64: the label emitted at each frame (blank included), -1 on padding
    states: np.ndarray  # (B, T) int64: index into the extended sequence l', -1 on padding
    log_prob: np.ndarray  # (B,) float64: log-probability of the best path (-inf when none exists)


def ctc_align(logits: np.ndarray, targets: np.ndarray, logit_lengths: np.ndarray,
              target_lengths: np.ndarray, *,
              blank: int = 0) -> CTCAlignment:
    """Viterbi forced alignment: the single best frame-level path through the CTC lattice [ctc:viterbi].

    Same inputs as ``ctc_loss``. The max-product version of [ctc:alpha-rec] with back-pointers;
    ties go to the highest predecessor state (staying in s, then s-1, then s-2) and, at the end, to
    the final blank over the last label. Infeasible utterances get ``-1`` labels and ``-inf``.
    """
    logits, targets, logit_lengths, target_lengths, blank = _prepare(logits, targets, logit_lengths,
                                                                     target_lengths, blank)
    B, T, _ = logits.shape
    labels = np.full((B, T), -1, dtype=np.int64)
    states = np.full((B, T), -1, dtype=np.int64)
    log_prob = np.full(B, NEG_INF)
    for b in range(B):
        Tb, Sb = int(logit_lengths[b]), int(target_lengths[b])
        if Tb == 0:
            log_prob[b] = 0.0 if Sb == 0 else NEG_INF
            continue
        x = logits[b, :Tb].astype(np.float64)  # (Tb, V)
        m = x.max(1, keepdims=True)
        log_y_all = x - (m + np.log(np.exp(x - m).sum(1, keepdims=True)))  # (Tb, V) [ctc:log-softmax]
        ext, skip = _extended(targets[b, :Sb], blank)
        N = ext.shape[0]
        log_y = log_y_all[:, ext]  # (Tb, N)
        # BEGIN ASSIGNMENT A3 points=2
        delta = np.full(N, NEG_INF)
        delta[:min(N, 2)] = log_y[0, :min(N, 2)]
        back = np.zeros((Tb, N), dtype=np.int64)  # back[t, s]: best predecessor state at t - 1
        for t in range(1, Tb):
            cand = np.stack([delta, _shift(delta, 1), np.where(skip, _shift(delta, 2), NEG_INF)])  # (3, N)
            k = np.argmax(cand, axis=0)  # 0: stay, 1: from s-1, 2: from s-2
            back[t] = np.arange(N) - k
            delta = cand[k, np.arange(N)] + log_y[t]  # [ctc:viterbi] max instead of log-sum
        end = N - 1 if N == 1 or delta[N - 1] >= delta[N - 2] else N - 2
        if delta[end] == NEG_INF:
            continue
        log_prob[b] = delta[end]
        s = end
        for t in range(Tb - 1, -1, -1):
            states[b, t] = s
            labels[b, t] = ext[s]
            s = back[t, s]
        # END ASSIGNMENT
    return CTCAlignment(labels, states, log_prob)
