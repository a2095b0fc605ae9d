"""Global-norm gradient clipping."""

from __future__ import annotations

import numpy as np

__all__ = ["clip_grad_norm", "global_norm"]


def global_norm(grads) -> float:
    """sqrt of the sum of squares over every array (a Module's grads or a dict)  [optim:clip]."""
    arrays = list((dict(grads.named_grads()) if hasattr(grads, "named_grads") else grads).values())
    return float(np.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in arrays)))


def clip_grad_norm(grads, max_norm: float) -> float:
    """Scale every gradient in place by ``max_norm / (N + 1e-6)`` when the global norm ``N`` exceeds
    ``max_norm`` (torch's ``clip_grad_norm_``)  [optim:clip]. Returns ``N`` before clipping.

    Raises ValueError if ``N`` is NaN or infinite: a step on such gradients would ruin the model,
    so the caller must decide (skip the batch, lower the rate) rather than train on silently.
    """
    max_norm = float(max_norm)
    if not max_norm > 0:
        raise ValueError(f"max_norm: expected a positive number, got {max_norm}")
    arrays = dict(grads.named_grads()) if hasattr(grads, "named_grads") else dict(grads)
    n = global_norm(arrays)
    if not np.isfinite(n):
        bad = [k for k, g in arrays.items() if not np.all(np.isfinite(g))]
        raise ValueError(f"clip_grad_norm: the gradient norm is {n}; non-finite values in {bad[:5]}")
    coef = max_norm / (n + 1e-6)
    if coef < 1.0:
        for g in arrays.values():
            g *= coef
    return n
