"""RNN transducer loss with the fused log-softmax gradient, FastEmit and gradient clamping.

References: Graves 2012, "Sequence Transduction with Recurrent Neural Networks" (arXiv:1211.3711);
Li et al. 2019, "Improving RNN Transducer Modeling for End-to-End Speech Recognition"
(arXiv:1909.12415, function merging); Yu et al. 2021, "FastEmit" (arXiv:2010.11148); torchaudio's
``rnnt_loss`` and NeMo's ``rnnt_numpy.py``/``cpu_rnnt.py`` (clamp, FastEmit). Derivations:
docs/equations/rnnt.md. Numba twin: kernels/rnnt.py.

The readable NumPy recursion walks the lattice one anti-diagonal ``n = t + u`` at a time, vectorised
over the nodes of the diagonal (every node on a diagonal depends only on the previous one). The
normaliser and the gradient are computed one frame at a time, so the NumPy path also needs only
``O(U V)`` scratch beyond the logits and their gradient.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import numpy as np

from .._backend import dispatch
from .._validate import float_array, lengths_array
from ..kernels.rnnt import rnnt_backward_kernel, rnnt_forward_kernel
from ._checks import (check_blank, check_finite_logits, check_options, check_targets, loss_scale,
                      reduce_loss)

NEG_INF = -np.inf


def _diagonal(n: int, Tb: int, Ub: int):
    """Nodes (t, u) of the anti-diagonal t + u = n inside the Tb x (Ub + 1) lattice [rnnt:diagonal]."""
    u = np.arange(max(0, n - (Tb - 1)), min(n, Ub) + 1)
    return n - u, u


def _rnnt_forward_numpy(logits, targets, logit_lengths, target_lengths, blank, row_max, log_Z, log_blank,
                        log_emit, log_alpha, log_beta, log_like):
    """Readable twin of ``kernels.rnnt.rnnt_forward_kernel`` (same arguments, fills the same arrays)."""
    B = logits.shape[0]
    for b in range(B):
        Tb, Ub = int(logit_lengths[b]), int(target_lengths[b])
        y = targets[b, :Ub]  # (Ub,)
        # BEGIN ASSIGNMENT A5 points=2
        for t in range(Tb):  # one frame at a time: scratch is (Ub+1, V), never (T, U+1, V)
            x = logits[b, t, :Ub + 1]  # (Ub+1, V)
            m = x.max(axis=1)  # (Ub+1,)
            row_max[b, t, :Ub + 1] = m
            m = m.astype(np.float64)  # exponentials and sums in float64 whatever the input dtype
            lz = m + np.log(np.exp(x - m[:, None]).sum(axis=1))  # [rnnt:log-softmax]
            log_Z[b, t, :Ub + 1] = lz
            log_blank[b, t, :Ub + 1] = x[:, blank] - lz  # log blank(t, u)
            log_emit[b, t, :Ub] = x[np.arange(Ub), y] - lz[:Ub]  # log y(t, u) = log P(y_{u+1} | t, u)
        # END ASSIGNMENT
        # BEGIN ASSIGNMENT A5 points=3
        la, lb, le = log_alpha[b], log_blank[b], log_emit[b]  # (T, U+1) views
        la[0, 0] = 0.0
        for n in range(1, Tb + Ub):  # [rnnt:alpha-rec] on the anti-diagonal t + u = n
            t, u = _diagonal(n, Tb, Ub)
            from_blank = np.full(t.shape, NEG_INF)  # arrive from (t-1, u) by emitting blank
            k = t >= 1
            from_blank[k] = la[t[k] - 1, u[k]] + lb[t[k] - 1, u[k]]
            from_label = np.full(t.shape, NEG_INF)  # arrive from (t, u-1) by emitting y_u
            k = u >= 1
            from_label[k] = la[t[k], u[k] - 1] + le[t[k], u[k] - 1]
            la[t, u] = np.logaddexp(from_blank, from_label)
        log_like[b, 0] = la[Tb - 1, Ub] + lb[Tb - 1, Ub]  # [rnnt:loglik]
        # END ASSIGNMENT
        # BEGIN ASSIGNMENT A5 points=2
        lbeta = log_beta[b]
        lbeta[Tb - 1, Ub] = lb[Tb - 1, Ub]
        for n in range(Tb + Ub - 2, -1, -1):  # [rnnt:beta-rec]
            t, u = _diagonal(n, Tb, Ub)
            to_blank = np.full(t.shape, NEG_INF)  # leave to (t+1, u) by emitting blank
            k = t + 1 <= Tb - 1
            to_blank[k] = lbeta[t[k] + 1, u[k]] + lb[t[k], u[k]]
            to_label = np.full(t.shape, NEG_INF)  # leave to (t, u+1) by emitting y_{u+1}
            k = u + 1 <= Ub
            to_label[k] = lbeta[t[k], u[k] + 1] + le[t[k], u[k]]
            lbeta[t, u] = np.logaddexp(to_blank, to_label)
        log_like[b, 1] = lbeta[0, 0]
        # END ASSIGNMENT


def _rnnt_backward_numpy(logits, targets, logit_lengths, target_lengths, blank, row_max, log_Z, log_blank,
                         log_emit, log_alpha, log_beta, log_like, scale, fastemit_lambda, clamp, dlogits):
    """Readable twin of ``kernels.rnnt.rnnt_backward_kernel``: writes every element of dlogits."""
    B = logits.shape[0]
    for b in range(B):
        Tb, Ub = int(logit_lengths[b]), int(target_lengths[b])
        ll = log_like[b, 0]
        dlogits[b] = 0.0  # padding nodes get exact zeros
        if scale[b] == 0.0 or ll == NEG_INF:
            continue
        y = targets[b, :Ub]
        # BEGIN ASSIGNMENT A5 points=5
        for t in range(Tb):
            la = log_alpha[b, t, :Ub + 1]  # (Ub+1,)
            occ = np.exp(la + log_beta[b, t, :Ub + 1] - ll)  # (Ub+1,) node occupancy
            if t < Tb - 1:
                next_beta = log_beta[b, t + 1, :Ub + 1]
            else:  # last frame: only the final blank at u = Ub leaves the lattice
                next_beta = np.full(Ub + 1, NEG_INF)
                next_beta[Ub] = 0.0
            g_blank = np.exp(la + log_blank[b, t, :Ub + 1] + next_beta - ll)  # (Ub+1,)
            g_emit = np.zeros(Ub + 1)  # (Ub+1,), 0 at u = Ub (no label left)
            g_emit[:Ub] = np.exp(la[:Ub] + log_emit[b, t, :Ub] + log_beta[b, t, 1:Ub + 1] - ll)
            m = row_max[b, t, :Ub + 1].astype(np.float64)
            coef = (occ + fastemit_lambda * g_emit) * np.exp(m - log_Z[b, t, :Ub + 1])  # [rnnt:fastemit]
            g = np.exp(logits[b, t, :Ub + 1] - m[:, None]) * coef[:, None]  # (Ub+1, V) float64
            g[:, blank] -= g_blank  # [rnnt:grad]
            g[np.arange(Ub), y] -= (1.0 + fastemit_lambda) * g_emit[:Ub]
            if clamp > 0.0:
                np.clip(g, -clamp, clamp, out=g)  # [rnnt:clamp]
            g *= scale[b]  # in place: the scratch stays one (Ub+1, V) block per frame
            dlogits[b, t, :Ub + 1] = g
        # END ASSIGNMENT


# One cache per call of rnnt_loss. Only O(B T U) arrays are added to the caller's logits.
class RNNTCache(NamedTuple):
    logits: np.ndarray  # (B, T, U+1, V) the caller's logits, not copied (the gradient pass re-reads them)
    targets: np.ndarray  # (B, U) int64
    logit_lengths: np.ndarray  # (B,) int64
    target_lengths: np.ndarray  # (B,) int64
    blank: int
    row_max: np.ndarray  # (B, T, U+1) logits dtype, max over V per node
    log_Z: np.ndarray  # (B, T, U+1) float64 log-softmax normaliser
    log_blank: np.ndarray  # (B, T, U+1) float64 log P(blank | t, u)
    log_emit: np.ndarray  # (B, T, U+1) float64 log P(y_{u+1} | t, u), -inf at u >= U_b
    log_alpha: np.ndarray  # (B, T, U+1) float64
    log_beta: np.ndarray  # (B, T, U+1) float64
    log_like: np.ndarray  # (B, 2) float64 log P(y|x) from alpha and from beta
    reduction: str
    fastemit_lambda: float
    clamp: float
    backend: str


def _float_option(name: str, value, *, minimum: Optional[float] = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or (minimum is not None and value < minimum):
        bound = "" if minimum is None else f" >= {minimum}"
        raise ValueError(f"{name}: expected a finite number{bound}, got {value}")
    return value


def rnnt_loss(logits: np.ndarray, targets: np.ndarray, logit_lengths: np.ndarray, target_lengths: np.ndarray,
              *, blank: int = 0, reduction: str = "sum", fastemit_lambda: float = 0.0, clamp: float = -1.0,
              backend: Optional[str] = None):
    """RNN-T negative log-likelihood from unnormalised joiner logits (log-softmax fused) [rnnt:loglik].

    logits (B, T, U+1, V) float32/float64; targets (B, U) int (labels in [0, V), never ``blank``);
    logit_lengths (B,) in [1, T]; target_lengths (B,) in [0, U] (more labels than frames is fine).
    ``fastemit_lambda`` >= 0 scales the label-transition gradients by 1 + lambda (the loss value is
    unchanged); ``clamp`` > 0 clips each gradient entry to [-clamp, clamp] (<= 0: off). Returns
    ``(loss, cache)``, loss (B,) for ``"none"``, else a scalar (``"mean"`` = sum / B).
    """
    backend = check_options(reduction, backend)
    logits = float_array("logits", logits, ndim=4)
    B, T, U1, V = logits.shape
    if U1 < 1:
        raise ValueError(f"logits: expected shape (B, T, U+1, V) with U+1 >= 1, got {logits.shape}")
    blank = check_blank(blank, V)
    targets, target_lengths = check_targets(targets, target_lengths, B, U1 - 1, V, blank)
    logit_lengths = lengths_array("logit_lengths", logit_lengths, B, T, allow_zero=False)  # T_b >= 1
    logit_lengths = np.ascontiguousarray(logit_lengths)
    check_finite_logits(logits, logit_lengths, target_lengths)
    fastemit_lambda = _float_option("fastemit_lambda", fastemit_lambda, minimum=0.0)
    clamp = _float_option("clamp", clamp)
    logits = np.ascontiguousarray(logits)
    row_max = np.zeros((B, T, U1), dtype=logits.dtype)
    log_Z, log_blank, log_emit, log_alpha, log_beta = (np.full((B, T, U1), NEG_INF) for _ in range(5))
    log_like = np.zeros((B, 2))
    fwd = dispatch(backend, _rnnt_forward_numpy, rnnt_forward_kernel)
    fwd(logits, targets, logit_lengths, target_lengths, blank, row_max, log_Z, log_blank, log_emit, log_alpha,
        log_beta, log_like)
    loss = reduce_loss(-log_like[:, 0], reduction, logits.dtype)
    return loss, RNNTCache(logits, targets, logit_lengths, target_lengths, blank, row_max, log_Z, log_blank,
                           log_emit, log_alpha, log_beta, log_like, reduction, fastemit_lambda, clamp,
                           backend)


def rnnt_loss_backward(dloss, cache: RNNTCache) -> np.ndarray:
    """dlogits (B, T, U+1, V) in the fused form [rnnt:grad], with [rnnt:fastemit] and [rnnt:clamp].

    Padded nodes get exact zeros. ``dloss`` has the shape of the loss.
    """
    B = cache.logits.shape[0]
    scale = loss_scale(dloss, cache.reduction, B)  # (B,)
    dlogits = np.empty(cache.logits.shape, dtype=cache.logits.dtype)  # every element is written below
    bwd = dispatch(cache.backend, _rnnt_backward_numpy, rnnt_backward_kernel)
    bwd(cache.logits, cache.targets, cache.logit_lengths, cache.target_lengths, cache.blank, cache.row_max,
        cache.log_Z, cache.log_blank, cache.log_emit, cache.log_alpha, cache.log_beta, cache.log_like, scale,
        cache.fastemit_lambda, cache.clamp, dlogits)
    return dlogits
