"""int8 products of the Conformer against the float32 sgemm they replace, one thread, CPU time.

    .venv/bin/python experiments/bench/bench_int8_matmul.py [--repeats 41]

For the Conformer's linear shapes (144 -> 576, 576 -> 144, 144 -> 144) at 40 and 300 rows, interleaved
(every repeat calls each contender once, so a change of load hits all alike), CPU time of the process
(``time.process_time``) per call, median over repeats; ratios are medians of per-repeat ratios against
the float peer timed in the same interleaved group (three groups: naive kernel vs sgemm; naive layer vs
float layer; VNNI kernel, VNNI layer, sgemm and float layer together):

* ``sgemm``: ``x @ W.T``, float32 BLAS (the float path's product);
* ``int8 naive``: kernels/int8_matmul.py (the portable fallback), operands already quantised;
* ``int8 vnni``: kernels/int8_vnni.py ``int8_matmul_vnni_kernel``, operands already quantised and packed;
* ``Linear f32``: the float layer, ``x @ W.T + b``;
* ``Int8Linear``: the whole int8 layer from float x to float y (quantise rows, product, rescale, bias),
  with the VNNI kernels (``vnni``) and with the fallback (``naive``).

Thread counts are pinned to 1 before NumPy and Numba load.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from scratchasr.kernels.int8_matmul import int8_matmul_kernel  # noqa: E402
from scratchasr.nn import conformer_int8 as q8  # noqa: E402

SHAPES = [(40, 144, 576), (40, 576, 144), (40, 144, 144), (300, 144, 576), (300, 576, 144), (300, 144, 144)]


def interleaved(fns, repeats):
    for fn in fns.values():  # warm-up (JIT compilation, packing)
        fn()
    out = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            c0 = time.process_time()
            fn()
            out[name].append(time.process_time() - c0)
    return {k: np.asarray(v) for k, v in out.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=41)
    args = ap.parse_args()
    vnni = q8.vnni_available()
    print(f"AVX-512 VNNI kernels: {'yes' if vnni else 'NO (fallback only)'}; load {os.getloadavg()}")
    rng = np.random.default_rng(0)
    print("| N, K -> O | sgemm us | int8 naive us (/sgemm) | int8 vnni us (/sgemm) | Linear f32 us "
          "| Int8Linear naive us (/f32) | Int8Linear vnni us (/f32) |")
    print("|---|---|---|---|---|---|---|")
    for N, K, n_out in SHAPES:
        x = rng.standard_normal((N, K)).astype(np.float32)
        W = (rng.standard_normal((n_out, K)) / np.sqrt(K)).astype(np.float32)
        b = rng.standard_normal(n_out).astype(np.float32)
        xq, _ = q8.quantize_rows(x)
        wq, _ = q8.quantize_weight(W)
        out = np.empty((N, n_out), np.int32)
        lin_naive = q8.Int8Linear(W, b, backend="numba")
        # three interleaved groups, each with its float peer: a slow contender that allocates large float64
        # temporaries (the fallback layer) perturbs the allocator and caches of whatever runs next
        t = interleaved({"sgemm": lambda: x @ W.T, "int8 naive": lambda: int8_matmul_kernel(xq, wq, out)},
                        args.repeats)
        t.update(interleaved({"Linear f32 (naive)": lambda: x @ W.T + b,
                              "Int8Linear naive": lambda: lin_naive(x)}, args.repeats))
        if vnni:
            from scratchasr.kernels.int8_vnni import int8_matmul_vnni_kernel
            xu = np.full((N, -(-K // 4) * 4), 128, np.uint8)
            xu[:, :K] = (xq.astype(np.int16) + 128).astype(np.uint8)
            wp, corr = q8.pack_weight_vnni(wq)
            lin_vnni = q8.Int8Linear(W, b, backend="vnni")
            t.update(interleaved({"sgemm (vnni)": lambda: x @ W.T,
                                  "int8 vnni": lambda: int8_matmul_vnni_kernel(xu, wp, corr, out),
                                  "Linear f32": lambda: x @ W.T + b,
                                  "Int8Linear vnni": lambda: lin_vnni(x)}, args.repeats))

        def cell(name, peer):
            if name not in t:
                return "-"
            return f"{np.median(t[name]) * 1e6:.0f} ({np.median(t[name] / t[peer]):.2f})"

        print(f"| {N}, {K} -> {n_out} | {np.median(t['sgemm']) * 1e6:.0f} | {cell('int8 naive', 'sgemm')} | "
              f"{cell('int8 vnni', 'sgemm (vnni)')} | {np.median(t['Linear f32 (naive)']) * 1e6:.0f} | "
              f"{cell('Int8Linear naive', 'Linear f32 (naive)')} | {cell('Int8Linear vnni', 'Linear f32')} |")
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
