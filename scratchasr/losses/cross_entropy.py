"""Token-level cross-entropy with label smoothing, log-softmax fused (attention decoders, language models).

References: Szegedy, Vanhoucke, Ioffe, Shlens, Wojna 2016, "Rethinking the Inception Architecture for
Computer Vision" (CVPR), section 7 (label-smoothing regularisation); PyTorch's
``torch.nn.functional.cross_entropy(..., label_smoothing=eps)``, whose smoothing (uniform over all V
classes) this follows exactly. Derivations: docs/equations/cross_entropy.md.

Only the valid positions ``s < target_lengths[b]`` (and, with ``ignore_index``, ``targets[b, s] !=
ignore_index``) are ever read: they are gathered into an ``(N, V)`` block first, so padded logits may hold
anything (NaN included) without reaching the loss or the gradient.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._validate import choice, float_array, int_array, length_mask, lengths_array
from ._checks import REDUCTIONS, loss_scale, reduce_loss


def _check_smoothing(label_smoothing) -> float:
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float, np.floating,
                                                                             np.integer)):
        raise TypeError(f"label_smoothing: expected a float in [0, 1], got {type(label_smoothing).__name__}")
    eps = float(label_smoothing)
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"label_smoothing: expected a float in [0, 1], got {label_smoothing}")
    return eps


def _check_ignore_index(ignore_index) -> int | None:
    if ignore_index is None:
        return None
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer)):
        raise TypeError(f"ignore_index: expected an integer or None, got {type(ignore_index).__name__}")
    return int(ignore_index)


# One cache per call of cross_entropy_loss; nothing in it is written after the forward returns.
class CrossEntropyCache(NamedTuple):
    shape: tuple  # (B, S, V) of the logits
    dtype: np.dtype  # the logits' dtype (the gradient's dtype)
    valid: np.ndarray  # (B, S) bool: positions that count (inside target_lengths, not ignore_index)
    rows: np.ndarray  # (N,) int64 utterance index b of each valid position, N = valid.sum()
    labels: np.ndarray  # (N,) int64 target of each valid position
    log_probs: np.ndarray  # (N, V) float64 log-softmax of the valid logits (softmax = exp of it)
    label_smoothing: float
    reduction: str


def cross_entropy_loss(logits: np.ndarray, targets: np.ndarray, target_lengths: np.ndarray | None, *,
                       label_smoothing: float = 0.0, ignore_index: int | None = None,
                       reduction: str = "sum"):
    """Per-position smoothed negative log-likelihood summed over each utterance's valid positions [xent:loss].

    logits (B, S, V) float32/float64, unnormalised; targets (B, S) int with labels in [0, V) at valid
    positions (padding may hold anything); target_lengths (B,) in [0, S] (``None``: all S positions).
    ``label_smoothing`` eps mixes the one-hot target with the uniform distribution over all V classes
    [xent:smoothing]; positions whose target equals ``ignore_index`` count for nothing. Returns
    ``(loss, cache)``: loss (B,) for ``reduction="none"``, else a scalar (``"mean"`` divides the sum by
    B, as the sequence losses do, not by the number of tokens as PyTorch's "mean").
    """
    choice("reduction", reduction, REDUCTIONS)
    eps = _check_smoothing(label_smoothing)
    ignore_index = _check_ignore_index(ignore_index)
    logits = float_array("logits", logits, ndim=3)
    B, S, V = logits.shape
    targets = int_array("targets", targets, ndim=2)
    if targets.shape != (B, S):
        raise ValueError(f"targets: expected shape ({B}, {S}) to match logits (B, S, V), got {targets.shape}")
    target_lengths = lengths_array("target_lengths", target_lengths, B, S)
    valid = length_mask(target_lengths, S)  # (B, S)
    if ignore_index is not None:
        valid &= targets != ignore_index
    labels = targets[valid]  # (N,)
    if labels.size and (labels.min() < 0 or labels.max() >= V):
        b, s = np.argwhere(valid & ((targets < 0) | (targets >= V)))[0]
        raise ValueError(f"targets: expected labels in [0, {V - 1}] within target_lengths, "
                         f"got {targets[b, s]} at ({b}, {s})")
    x = logits[valid].astype(np.float64)  # (N, V) only valid rows: padding (even NaN) is never read
    if not np.all(np.isfinite(x)):
        b, s = np.argwhere(valid & ~np.all(np.isfinite(logits), axis=2))[0]
        raise ValueError(f"logits: expected finite values at valid positions, found a non-finite value "
                         f"at ({b}, {s})")
    m = x.max(axis=1, keepdims=True) if x.size else np.zeros((0, 1))  # (N, 1)
    log_probs = x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))  # (N, V) [ops:log-softmax]
    N = labels.shape[0]
    nll_pos = -log_probs[np.arange(N), labels]  # (N,) -log p(y)
    if eps > 0.0:
        nll_pos = (1.0 - eps) * nll_pos - eps / V * log_probs.sum(axis=1)  # (N,) [xent:smoothing]
    rows = np.nonzero(valid)[0]  # (N,) utterance of each valid position (row-major order as labels)
    nll = np.bincount(rows, weights=nll_pos, minlength=B)  # (B,) [xent:loss]
    loss = reduce_loss(nll, reduction, logits.dtype)
    return loss, CrossEntropyCache((B, S, V), logits.dtype, valid, rows, labels, log_probs, eps, reduction)


def cross_entropy_loss_backward(dloss, cache: CrossEntropyCache) -> np.ndarray:
    """dlogits (B, S, V) = dloss_b * (softmax - q) at valid positions, exactly 0 elsewhere [xent:grad].

    ``q = (1 - eps) onehot(y) + eps / V`` is the smoothed target distribution; the softmax is the exp of
    the cached float64 log-probabilities (no second pass over the logits).
    """
    B, S, V = cache.shape
    scale = loss_scale(dloss, cache.reduction, B)  # (B,) [ctc:reduction]
    eps = cache.label_smoothing
    N = cache.labels.shape[0]
    g = np.exp(cache.log_probs)  # (N, V) softmax
    g -= eps / V  # uniform part of q
    g[np.arange(N), cache.labels] -= 1.0 - eps  # one-hot part of q; (N, V) = softmax - q [xent:grad]
    g *= scale[cache.rows, None]  # (N, V)
    dlogits = np.zeros((B, S, V), dtype=cache.dtype)
    dlogits[cache.valid] = g
    return dlogits
