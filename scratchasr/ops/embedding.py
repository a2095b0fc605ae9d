"""Embedding lookup ``y[b, t] = W[ids[b, t]]`` (torch.nn.Embedding layout, W is (V, D)).

Equations: docs/equations/ops.md, [ops:embedding] and [ops:embedding-back].
"""

from __future__ import annotations

from typing import NamedTuple, Tuple

import numpy as np

from .._validate import float_array, int_array, length_mask, lengths_array

__all__ = ["embedding_forward", "embedding_backward", "EmbeddingCache"]


class EmbeddingCache(NamedTuple):
    ids: np.ndarray  # (...) int64 row indices, with padded positions set to -1 (no gradient)
    V: int  # vocabulary size (rows of W)


def embedding_forward(ids, W: np.ndarray, *, lengths=None):
    """Rows of ``W`` picked by ``ids``: ``y[..., :] = W[ids[...], :]``  [ops:embedding].

    ids : (...) integers in [0, V) (any shape; with ``lengths`` it must be (B, T), and padded
    positions may hold anything, e.g. -1); W : (V, D). Returns ``(y (..., D), cache)``;
    padded positions of y are zero. The only float argument is W, so backward returns dW.
    """
    W = float_array("W", W, ndim=2)
    ids = int_array("ids", ids)
    V = W.shape[0]
    if lengths is not None:
        if ids.ndim != 2:
            raise ValueError(f"ids: expected (B, T) when lengths is given, got shape {ids.shape}")
        lengths = lengths_array("lengths", lengths, ids.shape[0], ids.shape[1])
        ids = np.where(length_mask(lengths, ids.shape[1]), ids, -1)  # a new array; the caller's is untouched
        valid = ids >= 0
    else:
        valid = np.ones(ids.shape, dtype=bool)
    bad = valid & ((ids < 0) | (ids >= V))
    if bad.any():
        i = tuple(int(k) for k in np.argwhere(bad)[0])
        raise ValueError(f"ids: expected values in [0, {V}), got {ids[i]} at index {i}")
    y = W[np.where(valid, ids, 0)] * valid[..., None]  # (..., D) gather, padding zeroed  [ops:embedding]
    return y, EmbeddingCache(np.where(valid, ids, -1), V)


def embedding_backward(dout: np.ndarray, cache: EmbeddingCache) -> Tuple[np.ndarray]:
    """``dW[v] = sum of dout over the positions with id v``  [ops:embedding-back] (repeats accumulate).

    dout : (..., D) like the output. Returns ``(dW (V, D),)`` (ids are integers: no gradient).
    """
    ids, V = cache.ids, cache.V
    dout = float_array("dout", dout, shape=ids.shape + (None,))
    D = dout.shape[-1]
    keep = ids.reshape(-1) >= 0
    dW = np.zeros((V, D), dtype=dout.dtype)
    # np.add.at is unbuffered, so a row that appears twice receives both contributions
    np.add.at(dW, ids.reshape(-1)[keep], dout.reshape(-1, D)[keep])  # [ops:embedding-back]
    return (dW,)
