"""Peak memory and time of one training step (forward_loss + backward) with and without joint chunking.

    python experiments/timit/transducer_blstm/measure_memory.py --exp_dir=/work/exp_rnnt --chunks=0,4,1

Takes the recipe's config, the training split's cached features (exp_dir/feats, computed if absent)
and the recipe's batches (length-sorted buckets of batch_size); measures the median-length batch and
the longest batch. Memory: tracemalloc's peak of traced (NumPy) allocations during the step, after a
warm-up step (Numba compilation); time: wall clock of the measured step (the machine may be shared).
"""

from __future__ import annotations

import argparse
import runpy
import time
import tracemalloc
from pathlib import Path

import numpy as np

from scratchasr import models
from scratchasr.data.batch import bucket_batches
from scratchasr.frontend import Frontend
from scratchasr.trainer import TrainConfig, _prepare_data


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--exp_dir", required=True)
    ap.add_argument("--chunks", default="0,4,1")
    ap.add_argument("--max_train_utts", type=int, default=0)
    args = ap.parse_args()
    base = runpy.run_path(str(Path(__file__).with_name("config.py")))["CONFIG"]
    cfg = TrainConfig.from_overrides(base, [f"--exp_dir={args.exp_dir}",
                                            f"--max_train_utts={args.max_train_utts}",
                                            "--max_dev_utts=1", "--progress=false"])
    frontend = Frontend(cfg.features)
    train, _, vocab = _prepare_data(cfg, Path(cfg.exp_dir), frontend)
    groups = bucket_batches([f.shape[0] for f in train.feats], cfg.batch_size, None)
    full = [g for g in groups if len(g) == cfg.batch_size]
    lengths = [max(train.feats[i].shape[0] for i in g) for g in full]
    order = np.argsort(lengths)
    picks = {"median batch": full[order[len(order) // 2]], "longest batch": full[order[-1]]}
    for name, idx in picks.items():
        batch = train.batch(idx)
        T = int(batch.feat_lengths.max())
        U = int(batch.target_lengths.max())
        print(f"{name}: B={len(idx)} T={T} frames (T'={-(-T // base['stack'])} after stacking) U={U}")
        for c in [int(x) for x in args.chunks.split(",")]:
            opts = dict(cfg.model_options, joint_chunk=c)
            model = models.build(cfg.model, input_dim=frontend.dim, vocab_size=len(vocab), dtype=np.float32,
                                 seed=0, **opts)
            model.forward_loss(batch)
            model.backward(np.full(len(idx), 1.0 / len(idx), np.float32))
            model.zero_grad()
            tracemalloc.start()
            t0 = time.perf_counter()
            model.forward_loss(batch)
            model.backward(np.full(len(idx), 1.0 / len(idx), np.float32))
            dt = time.perf_counter() - t0
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            what = "whole batch" if c == 0 else f"{c} utt/chunk"
            print(f"  joint_chunk={c:2d} ({what}): peak {peak / 2**20:8.1f} MiB, step {dt:.2f} s")


if __name__ == "__main__":
    main()
