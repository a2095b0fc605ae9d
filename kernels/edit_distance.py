"""sclite's weighted alignment of integer-encoded token sequences: the path, and its S/D/I counts.

NumPy twin (same arguments, same results): ``scratchasr.metrics._sclite_align_numpy``.
Equation tags: docs/equations/decoding.md [edit:init] [edit:rec] [edit:tie] [edit:backtrace]
[edit:counts]. The rule is NIST SCTK's ``Network_dpalign`` (src/sclite/net_dp.c) with the
weights of ``wwd_WORD`` (src/sclite/word.c): correct 0, insertion 3, deletion 3, substitution 4.

Layout: a batch of N (reference, hypothesis) pairs is passed as two flat int64 arrays plus offsets
(``ref_offsets (N + 1,)``, pair k's reference is ``ref_flat[ref_offsets[k]:ref_offsets[k + 1]]``).
``ops (ref_offsets[N] + hyp_offsets[N],)`` int8 receives pair k's operations, first to last, from
position ``ref_offsets[k] + hyp_offsets[k]`` (a path has at most n + m steps), codes ``OP_C, OP_S,
OP_D, OP_I`` and ``OP_PAD`` after the path's end; ``out (N, 5)`` int64 receives ``(substitutions,
deletions, insertions, distance = S + D + I, path length)``. Each pair is one ``prange`` iteration,
so results do not depend on the thread count.
"""

from __future__ import annotations

import numpy as np

from ._njit import njit, prange

W_INS = 3  # sclite wwd_WORD: insertion
W_DEL = 3  # deletion
W_SUB = 4  # substitution (a correct word costs 0)
OP_C, OP_S, OP_D, OP_I, OP_PAD = 0, 1, 2, 3, -1
BACK_DIAG, BACK_DEL, BACK_INS = 0, 1, 2  # back-pointer: (i-1, j-1), (i-1, j), (i, j-1)


@njit
def _sclite_align_one(ref, hyp, ops, out_row):
    """Align one pair of int64 sequences; fill ops[:L] (first to last) and out_row (5,)."""
    n = ref.shape[0]
    m = hyp.shape[0]
    cost = np.empty((n + 1, m + 1), dtype=np.int64)  # weighted cost of aligning ref[:i] with hyp[:j]
    back = np.empty((n + 1, m + 1), dtype=np.int8)  # the move that reached (i, j)
    cost[0, 0] = 0
    for j in range(1, m + 1):
        cost[0, j] = cost[0, j - 1] + W_INS  # [edit:init]
        back[0, j] = BACK_INS
    for i in range(1, n + 1):
        cost[i, 0] = cost[i - 1, 0] + W_DEL  # [edit:init]
        back[i, 0] = BACK_DEL
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            sub = cost[i - 1, j - 1] + (0 if ref[i - 1] == hyp[j - 1] else W_SUB)  # [edit:rec]
            dele = cost[i - 1, j] + W_DEL  # [edit:rec]
            ins = cost[i, j - 1] + W_INS  # [edit:rec]
            if sub <= dele and sub <= ins:  # diagonal wins every tie it is part of [edit:tie]
                cost[i, j] = sub
                back[i, j] = BACK_DIAG
            elif dele < ins:  # a deletion only when strictly cheaper than the insertion [edit:tie]
                cost[i, j] = dele
                back[i, j] = BACK_DEL
            else:
                cost[i, j] = ins
                back[i, j] = BACK_INS
    # follow the stored back-pointers from (n, m), writing the path last step first [edit:backtrace]
    L = 0
    i = n
    j = m
    while i > 0 or j > 0:
        b = back[i, j]
        if b == BACK_DIAG:
            ops[L] = OP_C if ref[i - 1] == hyp[j - 1] else OP_S
            i -= 1
            j -= 1
        elif b == BACK_DEL:
            ops[L] = OP_D
            i -= 1
        else:
            ops[L] = OP_I
            j -= 1
        L += 1
    S = 0
    D = 0
    I = 0  # noqa: E741
    for k in range(L // 2):  # reverse into first-to-last order
        tmp = ops[k]
        ops[k] = ops[L - 1 - k]
        ops[L - 1 - k] = tmp
    for k in range(L):
        if ops[k] == OP_S:
            S += 1
        elif ops[k] == OP_D:
            D += 1
        elif ops[k] == OP_I:
            I += 1  # noqa: E741
    for k in range(L, n + m):
        ops[k] = OP_PAD
    out_row[0] = S
    out_row[1] = D
    out_row[2] = I
    out_row[3] = S + D + I  # [edit:counts]
    out_row[4] = L


@njit(parallel=True)
def sclite_align_kernel(ref_flat, ref_offsets, hyp_flat, hyp_offsets, ops, out):
    """Fill ops (total n + m,) int8 and out (N, 5) int64 for each pair. Twin: ``_sclite_align_numpy``."""
    N = ref_offsets.shape[0] - 1
    for k in prange(N):
        first = ref_offsets[k] + hyp_offsets[k]  # pair k's slot in ops: n + m entries
        width = ref_offsets[k + 1] + hyp_offsets[k + 1] - first
        _sclite_align_one(ref_flat[ref_offsets[k]:ref_offsets[k + 1]],
                          hyp_flat[hyp_offsets[k]:hyp_offsets[k + 1]], ops[first:first + width], out[k])
