"""Frame stacking: concatenate ``k`` consecutive frames and keep every k-th position.

    x (B, T, D) -> (B, ceil(T/k), k*D),   lengths L -> ceil(L/k)

Used by the recurrent acoustic models (CTC, transducer, attention encoders) to cut the recurrent
work by ``k`` (10 ms frames become 20 or 30 ms steps, still more steps than phones). A partial last
group is zero-padded; frames past a length are never read (zeros go in their place), and the backward
pass is the inverse reshape with zeros at padded frames.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._validate import float_array, length_mask, lengths_array, positive_int
from .module import Module

__all__ = ["FrameStack", "stack_frames", "unstack_frames_grad"]


def stack_frames(x: np.ndarray, lengths: np.ndarray, k: int):
    """(B, T, D) -> (B, ceil(T/k), k*D) by concatenating k consecutive frames; new lengths ceil(L/k)."""
    B, T, D = x.shape
    valid = length_mask(lengths, T)[:, :, None]
    if k == 1:
        return np.where(valid, x, x.dtype.type(0)), lengths
    Tk = -(-T // k)
    xp = np.zeros((B, Tk * k, D), x.dtype)
    xp[:, :T] = np.where(valid, x, x.dtype.type(0))  # padding is never read
    return xp.reshape(B, Tk, k * D), -(-lengths // k)


def unstack_frames_grad(dxs: np.ndarray, T: int, k: int, lengths: np.ndarray) -> np.ndarray:
    """Backward of :func:`stack_frames`: (B, ceil(T/k), k*D) -> (B, T, D), zero past each length."""
    valid = length_mask(lengths, T)[:, :, None]
    if k == 1:
        return np.where(valid, dxs, dxs.dtype.type(0))
    B, Tk, kD = dxs.shape
    return np.where(valid, dxs.reshape(B, Tk * k, kD // k)[:, :T], dxs.dtype.type(0))


class StackCache(NamedTuple):
    T: int                  # input frames before stacking
    lengths: np.ndarray     # (B,) input lengths


class FrameStack(Module):
    """``forward(x (B, T, D), lengths) -> (xs (B, ceil(T/k), k*D), out_lengths)``; ``backward(dxs) -> dx``."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = positive_int("k", k)

    def output_lengths(self, lengths) -> np.ndarray:
        return -(-np.asarray(lengths, dtype=np.int64) // self.k)

    def forward(self, x, lengths=None):
        x = float_array("x", x, ndim=3)
        lengths = lengths_array("lengths", lengths, x.shape[0], x.shape[1])
        xs, out_lengths = stack_frames(x, lengths, self.k)
        self.push(StackCache(T=x.shape[1], lengths=lengths))
        return xs, out_lengths

    def backward(self, dxs):
        cache = self.pop()
        return unstack_frames_grad(dxs, cache.T, self.k, cache.lengths)
