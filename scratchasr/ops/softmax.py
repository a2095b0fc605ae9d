"""Softmax and log-softmax along one axis, stable (the maximum is subtracted before ``exp``).

Equations: docs/equations/ops.md, section "Softmax".
"""

from __future__ import annotations

from typing import NamedTuple, Tuple

import numpy as np

from .._validate import float_array

__all__ = ["softmax_forward", "softmax_backward", "log_softmax_forward", "log_softmax_backward",
           "SoftmaxCache", "LogSoftmaxCache"]


def _axis(x: np.ndarray, axis) -> int:
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or not -x.ndim <= axis < x.ndim:
        raise ValueError(f"axis: expected an integer in [{-x.ndim}, {x.ndim}), got {axis!r}")
    if x.shape[axis] == 0:
        raise ValueError(f"x: expected a non-empty axis {axis}, got shape {x.shape}")
    return int(axis) % x.ndim


def _log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    # BEGIN ASSIGNMENT A0 points=1
    m = np.max(x, axis=axis, keepdims=True)  # every exponent below is <= 0
    z = x - m
    return z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))  # [ops:log-softmax]
    # END ASSIGNMENT


class SoftmaxCache(NamedTuple):
    y: np.ndarray  # (...) the probabilities
    axis: int  # normalised axis


def softmax_forward(x: np.ndarray, axis: int = -1) -> Tuple[np.ndarray, SoftmaxCache]:
    """``y_i = exp(x_i - m) / sum_j exp(x_j - m)`` along ``axis`` (``m`` the maximum), any shape."""
    x = float_array("x", x)
    axis = _axis(x, axis)
    y = np.exp(_log_softmax(x, axis))  # [ops:softmax]
    return y, SoftmaxCache(y, axis)


def softmax_backward(dy: np.ndarray, cache: SoftmaxCache):
    """``(dx,)`` with ``dx = y * (dy - sum_j dy_j y_j)`` [ops:softmax-back]."""
    y, axis = cache.y, cache.axis
    dy = float_array("dy", dy, shape=y.shape)
    # BEGIN ASSIGNMENT A0 points=2
    return (y * (dy - np.sum(dy * y, axis=axis, keepdims=True)),)  # [ops:softmax-back]
    # END ASSIGNMENT


class LogSoftmaxCache(NamedTuple):
    log_y: np.ndarray  # (...) log-probabilities
    axis: int  # normalised axis


def log_softmax_forward(x: np.ndarray, axis: int = -1) -> Tuple[np.ndarray, LogSoftmaxCache]:
    """``log_y = x - m - log sum_j exp(x_j - m)`` along ``axis``."""
    x = float_array("x", x)
    axis = _axis(x, axis)
    log_y = _log_softmax(x, axis)  # [ops:log-softmax]
    return log_y, LogSoftmaxCache(log_y, axis)


def log_softmax_backward(dy: np.ndarray, cache: LogSoftmaxCache):
    """``(dx,)`` with ``dx = dy - exp(log_y) * sum_j dy_j`` [ops:log-softmax-back]."""
    log_y, axis = cache.log_y, cache.axis
    dy = float_array("dy", dy, shape=log_y.shape)
    # BEGIN ASSIGNMENT A0 points=2
    return (dy - np.exp(log_y) * np.sum(dy, axis=axis, keepdims=True),)  # [ops:log-softmax-back]
    # END ASSIGNMENT
