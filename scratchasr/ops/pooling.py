"""Masked mean pooling over time: the average of each sequence's valid frames.

Equations: docs/equations/ops.md, [ops:mean-pool] and [ops:mean-pool-back]. Used e.g. to turn an
encoder output ``(B, T, D)`` into one utterance vector ``(B, D)`` (padding must not dilute the mean).
"""

from __future__ import annotations

from typing import NamedTuple, Tuple

import numpy as np

from .._validate import float_array, length_mask, lengths_array

__all__ = ["masked_mean_forward", "masked_mean_backward", "mean_pool_forward", "mean_pool_backward",
           "MaskedMeanCache"]


class MaskedMeanCache(NamedTuple):
    weights: np.ndarray  # (B, T, 1) 1/L_b at valid frames, 0 at padding (all 0 when L_b = 0), x.dtype


def masked_mean_forward(x: np.ndarray, lengths=None) -> Tuple[np.ndarray, MaskedMeanCache]:
    """``y[b] = (1 / L_b) sum_{t < L_b} x[b, t]``  [ops:mean-pool]; an empty sequence (L_b = 0) gives zeros.

    x : (B, T, D); lengths : (B,) or None (all frames valid). Returns ``(y (B, D), cache)``.
    Padded frames are never read (they may hold NaN).
    """
    x = float_array("x", x, ndim=3)
    B, T, _ = x.shape
    lengths = lengths_array("lengths", lengths, B, T)
    valid = length_mask(lengths, T)  # (B, T)
    weights = (valid / np.maximum(lengths, 1)[:, None])[..., None].astype(x.dtype)  # (B, T, 1)
    y = np.sum(np.where(valid[..., None], x, 0.0) * weights, axis=1)  # (B, D)  [ops:mean-pool]
    return y.astype(x.dtype, copy=False), MaskedMeanCache(weights)


def masked_mean_backward(dout: np.ndarray, cache: MaskedMeanCache) -> Tuple[np.ndarray]:
    """``dx[b, t] = dout[b] / L_b`` at valid frames, exactly 0 at padding  [ops:mean-pool-back].

    dout : (B, D). Returns ``(dx (B, T, D),)``.
    """
    w = cache.weights
    dout = float_array("dout", dout, ndim=2, shape=(w.shape[0], None))
    dx = dout[:, None, :] * w  # (B, T, D) every valid frame shares the gradient equally  [ops:mean-pool-back]
    return (dx,)


# Alternative names (the pooling is also called "mean pooling" in the module layer).
mean_pool_forward = masked_mean_forward
mean_pool_backward = masked_mean_backward
