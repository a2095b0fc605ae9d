"""Inverted dropout with an explicit mask (Srivastava et al. 2014).

Equations: docs/equations/ops.md, [ops:dropout] and [ops:dropout-back]. Randomness never happens
inside the op: draw a mask with ``dropout_mask(rng, shape, p)`` and pass it in, so that forward is a
pure function and a gradient check (or a test) can hold the mask fixed. The mask already carries the
inverted scaling: entries are 0 (dropped) or ``1 / (1 - p)`` (kept), so ``E[y] = x`` and evaluation
needs no rescaling (simply skip the op). The mask is data, not a parameter: backward returns ``(dx,)``.
"""

from __future__ import annotations

from typing import NamedTuple, Tuple

import numpy as np

from .._validate import float_array

__all__ = ["dropout_forward", "dropout_backward", "dropout_mask", "DropoutCache"]


def dropout_mask(rng: np.random.Generator, shape, p: float, dtype=np.float64) -> np.ndarray:
    """A float mask of ``shape``: ``1 / (1 - p)`` with probability ``1 - p``, else 0  [ops:dropout].

    rng : np.random.Generator (the only source of randomness); p : drop probability in [0, 1).
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng: expected a numpy.random.Generator, got {type(rng).__name__}")
    if isinstance(p, bool) or not isinstance(p, (int, float, np.floating)) or not 0 <= p < 1:
        raise ValueError(f"p: expected a drop probability in [0, 1), got {p!r}")
    if np.dtype(dtype) not in (np.float32, np.float64):
        raise TypeError(f"dtype: expected float32 or float64, got {np.dtype(dtype)}")
    keep = rng.random(shape) >= p  # P(keep) = 1 - p
    return (keep / (1.0 - p)).astype(dtype)  # inverted scaling  [ops:dropout]


class DropoutCache(NamedTuple):
    mask: np.ndarray  # (...) the mask, 0 or 1/(1-p), same shape as x (a reference: never written)


def dropout_forward(x: np.ndarray, mask: np.ndarray) -> Tuple[np.ndarray, DropoutCache]:
    """``y = x * mask``  [ops:dropout].

    x : any shape; mask : same shape and dtype as x (from ``dropout_mask``). Returns ``(y, cache)``.
    """
    x = float_array("x", x)
    mask = float_array("mask", mask, shape=x.shape)
    if mask.dtype != x.dtype:
        raise TypeError(f"mask: expected dtype {x.dtype} (the dtype of x), got {mask.dtype}")
    y = x * mask  # [ops:dropout]
    return y, DropoutCache(mask)


def dropout_backward(dout: np.ndarray, cache: DropoutCache) -> Tuple[np.ndarray]:
    """``dx = dout * mask``  [ops:dropout-back]: dropped entries get exactly zero gradient.

    Returns ``(dx,)``.
    """
    dout = float_array("dout", dout, shape=cache.mask.shape)
    dx = dout * cache.mask  # [ops:dropout-back]
    return (dx,)
