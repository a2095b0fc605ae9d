"""Input validation shared by the sequence losses (CTC, RNN-T)."""

from __future__ import annotations

from typing import Optional

import numpy as np

from .._backend import resolve_backend
from .._validate import choice, int_array, length_mask, lengths_array

REDUCTIONS = ("none", "sum", "mean")


def check_blank(blank, V: int) -> int:
    """``blank`` must be an integer index into the vocabulary, 0 <= blank < V."""
    if isinstance(blank, bool) or not isinstance(blank, (int, np.integer)):
        raise TypeError(f"blank: expected an integer, got {type(blank).__name__}")
    if not 0 <= blank < V:
        raise ValueError(f"blank: expected an index in [0, {V - 1}] (V={V}), got {blank}")
    return int(blank)


def check_targets(targets, target_lengths, B: int, S: Optional[int], V: int, blank: int):
    """Validate ``targets (B, S)`` and ``target_lengths (B,)``; return both as int64 arrays.

    Only the valid part ``targets[b, :target_lengths[b]]`` is checked (and later read): it must lie in
    ``[0, V)`` and never equal ``blank``. The padding may hold anything.
    """
    targets = int_array("targets", targets, ndim=2)
    if targets.shape[0] != B:
        raise ValueError(f"targets: expected shape ({B}, S) to match the batch of logits, "
                         f"got {targets.shape}")
    if S is None:
        S = targets.shape[1]
    if targets.shape[1] != S:
        raise ValueError(f"targets: expected shape ({B}, {S}), got {targets.shape}")
    target_lengths = lengths_array("target_lengths", target_lengths, B, S)
    valid = length_mask(target_lengths, S)  # (B, S)
    vals = targets[valid]
    if vals.size and (vals.min() < 0 or vals.max() >= V):
        raise ValueError(f"targets: expected labels in [0, {V - 1}] within target_lengths, "
                         f"got min {vals.min()} "
                         f"and max {vals.max()}")
    if np.any(vals == blank):
        b, s = np.argwhere(valid & (targets == blank))[0]
        raise ValueError(f"targets: the blank index {blank} may not appear as a label, found at ({b}, {s})")
    return np.ascontiguousarray(targets), np.ascontiguousarray(target_lengths)


def check_finite_logits(logits: np.ndarray, logit_lengths: np.ndarray,
                        target_lengths: Optional[np.ndarray] = None) -> None:
    """The logits the loss reads may not be NaN or +inf; the padding may hold anything (NaN included).

    ``-inf`` is allowed (a masked symbol: log 0) as long as each frame keeps one finite logit. CTC
    reads ``logits[b, :T_b]``; RNN-T (``target_lengths`` given, logits ``(B, T, U+1, V)``) reads
    ``logits[b, :T_b, :U_b + 1]``. Unchecked, a NaN came out as a NaN loss from one backend, inf
    from the other, and as 0 under ``zero_infinity``.
    """
    lengths = "logit_lengths" if target_lengths is None else "logit_lengths and target_lengths"
    for b in range(logits.shape[0]):
        Tb = int(logit_lengths[b])
        block = logits[b, :Tb] if target_lengths is None else logits[b, :Tb, :int(target_lengths[b]) + 1]
        if np.isfinite(block).all():
            continue                                   # the common case: one pass, nothing else
        bad = np.isnan(block) | np.isposinf(block)
        if bad.any():
            where = (b,) + tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"logits: {logits[where]} at index {where}, inside {lengths} (NaN and +inf "
                             "are only allowed in the padding; -inf masks a symbol)")
        dead = np.isneginf(block).all(axis=-1)
        if dead.any():
            where = (b,) + tuple(int(i) for i in np.argwhere(dead)[0])
            raise ValueError(f"logits: every symbol is -inf at frame {where}, inside {lengths}: "
                             "the frame has no probability to distribute")


def check_options(reduction, backend) -> str:
    """Validate ``reduction`` and resolve ``backend`` to "numpy" or "numba" (both losses have kernels)."""
    choice("reduction", reduction, REDUCTIONS)
    return resolve_backend(backend)


def reduce_loss(nll: np.ndarray, reduction: str, dtype) -> np.ndarray:
    """Per-utterance NLL (B,) -> the requested reduction, in the logits' dtype."""
    if reduction == "none":
        return nll.astype(dtype)
    total = nll.sum()  # [ctc:reduction]
    if reduction == "mean":
        total = total / max(nll.shape[0], 1)
    return np.asarray(total, dtype=dtype)


def loss_scale(dloss, reduction: str, B: int) -> np.ndarray:
    """Turn ``dloss`` (shape of the loss) into a per-utterance float64 multiplier (B,)."""
    d = np.asarray(dloss, dtype=np.float64)
    if not np.all(np.isfinite(d)):
        bad = d if d.ndim == 0 else d[~np.isfinite(d)][:3]
        raise ValueError(f"dloss: expected finite values, got {bad}")
    if reduction == "none":
        if d.shape != (B,):
            raise ValueError(f"dloss: expected shape ({B},) for reduction='none', got {d.shape}")
        return d.copy()
    if d.shape != ():
        raise ValueError(f"dloss: expected a scalar for reduction={reduction!r}, got shape {d.shape}")
    value = float(d) / max(B, 1) if reduction == "mean" else float(d)  # [ctc:reduction]
    return np.full(B, value)
