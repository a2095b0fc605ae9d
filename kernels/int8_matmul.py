"""Integer matrix product for the int8 inference path: int8 rows times int8 weight rows, int32 sums.

NumPy twin (same arguments, same results, exactly: integer arithmetic):
``scratchasr.nn.conformer_int8.int8_matmul_numpy``. Equation tag: docs/equations/conformer.md
[conformer:int8-matmul]. ``xq (N, K)`` int8, ``wq (O, K)`` int8, ``out (N, O)`` int32 is filled with
``sum_k int32(xq[n, k]) * int32(wq[o, k])``; the caller checks ``K * 127 * 127 < 2**31``. Rows are
independent (one ``prange`` iteration each), so the result does not depend on the thread count.

The portable fallback: on a CPU with AVX-512 VNNI, ``kernels/int8_vnni.py`` computes the same integers 3-5x
faster than float32 sgemm (experiments/bench/int8_matmul.py); this loop is 1.2-2x slower than sgemm.
"""

from __future__ import annotations

import numpy as np

from ._njit import njit, prange


@njit(parallel=True)
def int8_matmul_kernel(xq, wq, out):
    N, K = xq.shape
    n_out = wq.shape[0]
    for n in prange(N):
        for o in range(n_out):
            acc = np.int32(0)
            for k in range(K):
                acc += np.int32(xq[n, k]) * np.int32(wq[o, k])  # [conformer:int8-matmul] int32 sum
            out[n, o] = acc
