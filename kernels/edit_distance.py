"""Levenshtein alignment of integer-encoded token sequences, with substitution/deletion/insertion counts.

NumPy twin (same arguments, same results): ``scratchasr.metrics._edit_ops_numpy``.
Equation tags: docs/equations/decoding.md [edit:init] [edit:rec] [edit:backtrace].

Layout: a batch of N (reference, hypothesis) pairs is passed as two flat int64 arrays plus offsets
(``ref_offsets (N + 1,)``, pair n's reference is ``ref_flat[ref_offsets[n]:ref_offsets[n + 1]]``);
``out (N, 4)`` int64 receives ``(substitutions, deletions, insertions, distance)`` per pair. Each
pair is one ``prange`` iteration, so results do not depend on the thread count.
"""

from __future__ import annotations

import numpy as np

from ._njit import njit, prange


@njit
def _edit_ops_one(ref, hyp, out_row):
    """Fill out_row (4,) with (S, D, I, distance) for one pair of int64 sequences."""
    n = ref.shape[0]
    m = hyp.shape[0]
    cost = np.empty((n + 1, m + 1), dtype=np.int64)  # cost[i, j] = distance(ref[:i], hyp[:j])
    for i in range(n + 1):
        cost[i, 0] = i  # i deletions [edit:init]
    for j in range(m + 1):
        cost[0, j] = j  # j insertions [edit:init]
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            diag = cost[i - 1, j - 1] + (0 if ref[i - 1] == hyp[j - 1] else 1)
            up = cost[i - 1, j] + 1  # delete ref[i-1]
            left = cost[i, j - 1] + 1  # insert hyp[j-1]
            best = diag
            if up < best:
                best = up
            if left < best:
                best = left
            cost[i, j] = best  # [edit:rec]
    # backtrace from (n, m); ties: diagonal, then deletion, then insertion [edit:backtrace]
    S = 0
    D = 0
    I = 0  # noqa: E741
    i = n
    j = m
    while i > 0 or j > 0:
        if i > 0 and j > 0:
            sub = 0 if ref[i - 1] == hyp[j - 1] else 1
            if cost[i, j] == cost[i - 1, j - 1] + sub:
                S += sub
                i -= 1
                j -= 1
                continue
        if i > 0 and cost[i, j] == cost[i - 1, j] + 1:
            D += 1
            i -= 1
        else:
            I += 1
            j -= 1
    out_row[0] = S
    out_row[1] = D
    out_row[2] = I
    out_row[3] = cost[n, m]


@njit(parallel=True)
def edit_ops_kernel(ref_flat, ref_offsets, hyp_flat, hyp_offsets, out):
    """Fill out (N, 4) int64 with (S, D, I, distance) for each pair. Twin: ``_edit_ops_numpy``."""
    N = ref_offsets.shape[0] - 1
    for k in prange(N):
        _edit_ops_one(ref_flat[ref_offsets[k]:ref_offsets[k + 1]],
                      hyp_flat[hyp_offsets[k]:hyp_offsets[k + 1]], out[k])
