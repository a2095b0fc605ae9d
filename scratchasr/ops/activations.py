"""Element-wise activations: sigmoid, tanh, relu, swish (SiLU) and the gated linear unit (GLU).

Each pair caches only what its derivative needs (usually the output). References: Ramachandran et al.
2017 (swish), Dauphin et al. 2017 (GLU, used in the Conformer convolution module, Gulati et al. 2020).
Equations: docs/equations/ops.md, section "Activations".
"""

from __future__ import annotations

from typing import NamedTuple, Tuple

import numpy as np

from .._validate import float_array

__all__ = ["sigmoid", "sigmoid_forward", "sigmoid_backward", "tanh_forward", "tanh_backward",
           "relu_forward", "relu_backward", "swish_forward", "swish_backward", "glu_forward", "glu_backward"]


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function: never evaluates ``exp`` of a positive number."""
    e = np.exp(-np.abs(x))  # in (0, 1]: no overflow for any x
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))  # [ops:sigmoid]


class SigmoidCache(NamedTuple):
    y: np.ndarray  # (...) the output sigma(x)


def sigmoid_forward(x: np.ndarray) -> Tuple[np.ndarray, SigmoidCache]:
    """``y = 1 / (1 + exp(-x))`` element-wise, any shape."""
    x = float_array("x", x)
    y = sigmoid(x)  # [ops:sigmoid]
    return y, SigmoidCache(y)


def sigmoid_backward(dy: np.ndarray, cache: SigmoidCache):
    """``(dx,)`` with ``dx = dy * y (1 - y)`` [ops:sigmoid-back]."""
    y = cache.y
    dy = float_array("dy", dy, shape=y.shape)
    return (dy * y * (1 - y),)  # [ops:sigmoid-back]


class TanhCache(NamedTuple):
    y: np.ndarray  # (...) the output tanh(x)


def tanh_forward(x: np.ndarray) -> Tuple[np.ndarray, TanhCache]:
    """``y = tanh(x)`` element-wise."""
    x = float_array("x", x)
    y = np.tanh(x)  # [ops:tanh]
    return y, TanhCache(y)


def tanh_backward(dy: np.ndarray, cache: TanhCache):
    """``(dx,)`` with ``dx = dy (1 - y^2)`` [ops:tanh-back]."""
    y = cache.y
    dy = float_array("dy", dy, shape=y.shape)
    return (dy * (1 - y * y),)  # [ops:tanh-back]


class ReluCache(NamedTuple):
    positive: np.ndarray  # (...) bool, x > 0


def relu_forward(x: np.ndarray) -> Tuple[np.ndarray, ReluCache]:
    """``y = max(x, 0)`` element-wise [ops:relu] (derivative at 0 taken as 0, as PyTorch)."""
    x = float_array("x", x)
    positive = x > 0
    return np.where(positive, x, 0).astype(x.dtype), ReluCache(positive)  # [ops:relu]


def relu_backward(dy: np.ndarray, cache: ReluCache):
    """``(dx,)`` with ``dx = dy [x > 0]`` [ops:relu-back]."""
    dy = float_array("dy", dy, shape=cache.positive.shape)
    return (np.where(cache.positive, dy, 0).astype(dy.dtype),)  # [ops:relu-back]


class SwishCache(NamedTuple):
    x: np.ndarray  # (...) the input
    s: np.ndarray  # (...) sigma(x)


def swish_forward(x: np.ndarray) -> Tuple[np.ndarray, SwishCache]:
    """Swish / SiLU ``y = x sigma(x)`` element-wise [ops:swish]."""
    x = float_array("x", x)
    s = sigmoid(x)
    return x * s, SwishCache(x, s)  # [ops:swish]


def swish_backward(dy: np.ndarray, cache: SwishCache):
    """``(dx,)`` with ``dx = dy (s + x s (1 - s))`` [ops:swish-back]."""
    x, s = cache.x, cache.s
    dy = float_array("dy", dy, shape=x.shape)
    return (dy * (s + x * s * (1 - s)),)  # [ops:swish-back]


class GLUCache(NamedTuple):
    a: np.ndarray  # (..., H, ...) first half along `axis` (the value)
    s: np.ndarray  # (..., H, ...) sigma of the second half (the gate)
    axis: int  # the (non-negative) split axis


def glu_forward(x: np.ndarray, axis: int = -1) -> Tuple[np.ndarray, GLUCache]:
    """Gated linear unit: split ``x`` in halves ``a, g`` along ``axis``; ``y = a * sigma(g)`` [ops:glu].

    x : (..., 2H, ...) -> y : (..., H, ...), as ``torch.nn.functional.glu``.
    """
    x = float_array("x", x)
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or not -x.ndim <= axis < x.ndim:
        raise ValueError(f"axis: expected an integer in [{-x.ndim}, {x.ndim}), got {axis!r}")
    axis = int(axis) % x.ndim
    if x.shape[axis] % 2:
        raise ValueError(f"x: expected an even size along axis {axis}, got shape {x.shape}")
    a, g = np.split(x, 2, axis=axis)
    s = sigmoid(g)
    return a * s, GLUCache(a, s, axis)  # [ops:glu]


def glu_backward(dy: np.ndarray, cache: GLUCache):
    """``(dx,)``: ``da = dy s``, ``dg = dy a s (1 - s)`` concatenated back along ``axis`` [ops:glu-back]."""
    a, s, axis = cache.a, cache.s, cache.axis
    dy = float_array("dy", dy, shape=a.shape)
    da = dy * s  # [ops:glu-back]
    dg = dy * a * s * (1 - s)  # [ops:glu-back]
    return (np.concatenate([da, dg], axis=axis),)
