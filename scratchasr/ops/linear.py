"""Affine (fully connected) layer ``y = x W^T + b`` with its hand-derived backward.

PyTorch's ``nn.Linear`` weight layout ``W (O, D)``; cs231n's ``affine_forward``/``affine_backward``.
Equations: docs/equations/ops.md, section "Linear".
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

import numpy as np

from .._validate import float_array, length_mask, lengths_array, same_dtype

__all__ = ["linear_forward", "linear_backward", "LinearCache"]


class LinearCache(NamedTuple):
    x: np.ndarray  # (..., D) the input (padded frames already zeroed when lengths is given)
    W: np.ndarray  # (O, D)
    has_bias: bool  # whether b was given (decides whether backward returns db)
    mask: Optional[np.ndarray]  # (B, T, 1) bool valid frames, or None without lengths


def linear_forward(x: np.ndarray, W: np.ndarray, b: Optional[np.ndarray] = None, *,
                   lengths=None) -> Tuple[np.ndarray, LinearCache]:
    """``y = x W^T + b`` over the last axis.

    x : (..., D); W : (O, D); b : (O,) or None. ``lengths`` (B,) is allowed for ``x (B, T, D)``:
    frames ``t >= lengths[b]`` give ``y = 0`` and receive zero gradient. Returns ``y (..., O)``.
    """
    x = float_array("x", x)
    if x.ndim < 1:
        raise ValueError(f"x: expected an array with a feature axis (..., D), got shape {x.shape}")
    W = float_array("W", W, ndim=2, shape=(None, x.shape[-1]))
    if b is not None:
        b = float_array("b", b, ndim=1, shape=(W.shape[0],))
    same_dtype(x=x, W=W, b=b)
    mask = None
    if lengths is not None:
        if x.ndim != 3:
            raise ValueError(f"x: lengths requires a 3-D (B, T, D) input, got shape {x.shape}")
        mask = length_mask(lengths_array("lengths", lengths, x.shape[0], x.shape[1]), x.shape[1])[..., None]
        x = np.where(mask, x, 0)  # padded frames are never read
    # BEGIN ASSIGNMENT A0 points=2
    y = x @ W.T  # [ops:linear] (..., O)
    if b is not None:
        y = y + b
    if mask is not None:
        y = np.where(mask, y, 0)  # padded frames output 0
    # END ASSIGNMENT
    return y, LinearCache(x, W, b is not None, mask)


def linear_backward(dy: np.ndarray, cache: LinearCache):
    """Gradients ``(dx (..., D), dW (O, D), db (O,))``; ``db`` is left out when ``b`` was None."""
    x, W, has_bias, mask = cache.x, cache.W, cache.has_bias, cache.mask
    dy = float_array("dy", dy, shape=x.shape[:-1] + (W.shape[0],))
    if mask is not None:
        dy = np.where(mask, dy, 0)  # padded outputs pass no gradient
    # BEGIN ASSIGNMENT A0 points=3
    dx = dy @ W  # [ops:linear-back] dL/dx = dy W
    x2 = x.reshape(-1, x.shape[-1])  # (N, D) all leading axes flattened
    dy2 = dy.reshape(-1, W.shape[0])  # (N, O)
    dW = dy2.T @ x2  # [ops:linear-back] dL/dW = sum_n dy_n^T x_n
    if not has_bias:
        return dx, dW
    db = dy2.sum(axis=0)  # [ops:linear-back] dL/db = sum_n dy_n
    return dx, dW, db
    # END ASSIGNMENT
