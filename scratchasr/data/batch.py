"""Batches: the one place where variable-length utterances become padded arrays.

A :class:`Batch` is what every model's ``forward_loss``/``decode`` takes (../API contract, README):

    Batch(feats (B, T, D) float or None, feat_lengths (B,) or None, targets (B, S) int,
          target_lengths (B,), ids)

Padding positions (``t >= feat_lengths[b]``, ``s >= target_lengths[b]``) may hold anything; models must
not read them. :func:`pad_sequences` fills them with ``pad_value`` (0 by default).

:func:`bucket_batches` is the trainer's batching rule: sort utterances by length, cut the sorted list
into batches of ``batch_size`` (similar lengths, so little padding), shuffle the order of the batches.
"""

from __future__ import annotations

from typing import List, NamedTuple, Optional, Sequence

import numpy as np

__all__ = ["Batch", "pad_sequences", "make_batch", "bucket_batches", "select"]


class Batch(NamedTuple):
    """One minibatch (API.md "scratchasr.data.Batch"). Language models take ``feats=None``."""

    feats: Optional[np.ndarray]         # (B, T, D) float; frames t >= feat_lengths[b] are padding
    feat_lengths: Optional[np.ndarray]  # (B,) int64
    targets: np.ndarray                 # (B, S) int64; ids 1 .. V-1 within target_lengths
    target_lengths: np.ndarray          # (B,) int64
    ids: Optional[Sequence[str]] = None  # utterance ids, for messages that name an utterance

    @property
    def size(self) -> int:
        return int(self.target_lengths.shape[0])


def pad_sequences(seqs: Sequence[np.ndarray], *, pad_value=0, dtype=None):
    """List of ``(T_i, ...)`` arrays -> ``(B, T_max, ...)`` padded with ``pad_value``, lengths ``(B,)`` int64.

    An empty list gives ``(0, 0, ...)``; every array must share its trailing shape.
    """
    if len(seqs) == 0:
        raise ValueError("seqs: expected at least one sequence")
    seqs = [np.asarray(s) for s in seqs]
    tail = seqs[0].shape[1:]
    for i, s in enumerate(seqs):
        if s.ndim < 1 or s.shape[1:] != tail:
            want = f"(T, {', '.join(map(str, tail))})" if tail else "(T,)"
            raise ValueError(f"seqs: element {i} has shape {s.shape}, expected {want}")
    lengths = np.array([s.shape[0] for s in seqs], dtype=np.int64)
    out = np.full((len(seqs), int(lengths.max(initial=0))) + tail, pad_value,
                  dtype=dtype if dtype is not None else seqs[0].dtype)
    for i, s in enumerate(seqs):
        out[i, : s.shape[0]] = s
    return out, lengths


def make_batch(feats: Optional[Sequence[np.ndarray]], targets: Sequence[Sequence[int]],
               ids: Optional[Sequence[str]] = None) -> Batch:
    """Pad a list of ``(T_i, D)`` feature arrays (or ``None`` for text) and a list of target id lists."""
    if feats is not None and len(feats) != len(targets):
        raise ValueError(f"targets: expected {len(feats)} target sequences (one per feature array), "
                         f"got {len(targets)}")
    x = lens = None
    if feats is not None:
        x, lens = pad_sequences(feats)
    y, ylens = pad_sequences([np.asarray(t, dtype=np.int64).reshape(-1) for t in targets], dtype=np.int64)
    return Batch(x, lens, y, ylens, list(ids) if ids is not None else None)


def select(items: Sequence, idx) -> list:
    return [items[int(i)] for i in idx]


def bucket_batches(lengths: Sequence[int], batch_size: int,
                   rng: Optional[np.random.Generator] = None) -> List[np.ndarray]:
    """Indices of each batch: sort by length (stable), cut into groups of ``batch_size``, shuffle the groups.

    ``rng=None`` keeps the sorted order (evaluation). The same ``rng`` state gives the same batches.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")
    order = np.argsort(np.asarray(lengths), kind="stable")
    groups = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if rng is not None:
        groups = [groups[i] for i in rng.permutation(len(groups))]
    return groups
