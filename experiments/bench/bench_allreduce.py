"""What the data-parallel gradient sum costs per optimiser step (scratchasr.distributed, docs/distributed.md).

    mpiexec -n 2 .venv/bin/python experiments/bench/bench_allreduce.py [--repeats 30]

Builds the BiLSTM-CTC recipe's model (experiments/timit/ctc_blstm/config.py: 123-dim features x stack 2,
2 x BiLSTM
256, 61 phones + blank), fills its gradients and times ``World.allreduce_grads`` (flatten into one buffer,
one MPI_Allreduce, copy back) and the bare ``MPI_Allreduce`` of the same buffer, median over repeats.
Rank 0 prints one markdown table row.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args()
    from mpi4py import MPI

    from scratchasr import models
    from scratchasr.distributed import world
    w = world()
    m = models.build("ctc_blstm", input_dim=123, vocab_size=62, dtype=np.float32, seed=0, hidden=256,
                     num_layers=2, stack=2, dropout=0.2)
    grads = m.gradients()
    rng = np.random.default_rng(w.rank)
    for g in grads.values():
        g[...] = rng.standard_normal(g.shape)
    n = sum(g.size for g in grads.values())
    t_full, t_bare = [], []
    buf = np.zeros(n + 1, np.float32)
    for _ in range(args.repeats):
        w.barrier()
        t0 = time.perf_counter()
        w.allreduce_grads(grads, False)
        t_full.append(time.perf_counter() - t0)
        w.barrier()
        t0 = time.perf_counter()
        w.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        t_bare.append(time.perf_counter() - t0)
    if w.is_root:
        mb = 4 * (n + 1) / 2**20
        print("| ranks | parameters | buffer MiB | allreduce_grads ms median (min) "
              "| bare MPI_Allreduce ms median (min) |")
        print("|---|---|---|---|---|")
        print(f"| {w.size} | {n:,} | {mb:.1f} | {1e3 * np.median(t_full):.1f} ({1e3 * min(t_full):.1f}) "
              f"| {1e3 * np.median(t_bare):.1f} ({1e3 * min(t_bare):.1f}) |")


if __name__ == "__main__":
    main()
