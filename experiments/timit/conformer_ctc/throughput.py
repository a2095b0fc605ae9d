"""Training throughput (input frames/s of forward_loss + backward + Adam step) of the Conformer-CTC recipe
model against the BiLSTM-CTC recipe model, on the same random batches, interleaved A B A B ... so that the
shared machine's load hits both alike.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1 \
        .venv/bin/python experiments/timit/conformer_ctc/throughput.py [--rounds 5] [--frames 300]

Batches: 16 utterances of ``--frames`` frames (TIMIT's mean is ~300 frames of 10 ms), 123-dim features,
float32, 62 outputs, 20 random labels each. Prints frames/s per model (median over rounds) and the ratio,
both per second of this process's CPU time (single-threaded BLAS: what one core does, whatever the load)
and per wall-clock second (what the shared machine gave us).
"""

import argparse
import importlib.util
import os
import statistics
import time

import numpy as np

from scratchasr import models
from scratchasr.data.batch import make_batch
from scratchasr.optim import Adam

HERE = os.path.dirname(os.path.abspath(__file__))
TRAINER_KEYS = {"model", "data_dir", "exp_dir", "lr", "schedule", "warmup_steps", "clip", "batch_size",
                "epochs", "patience", "spec_augment", "seed", "lr_halving"}


def recipe(path):
    spec = importlib.util.spec_from_file_location("cfg", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    cfg = dict(mod.CONFIG)
    return cfg["model"], {k: v for k, v in cfg.items() if k not in TRAINER_KEYS}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--batch", type=int, default=16)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    B, T, D, V = args.batch, args.frames, 123, 62
    feats = [rng.standard_normal((T, D)).astype(np.float32) for _ in range(B)]
    batch = make_batch(feats, [list(rng.integers(1, V, 20)) for _ in range(B)])
    runs = {}
    for name, path in (("ctc_blstm", os.path.join(HERE, "..", "ctc_blstm", "config.py")),
                       ("conformer_ctc", os.path.join(HERE, "config.py"))):
        model_name, opts = recipe(path)
        m = models.build(model_name, input_dim=D, vocab_size=V, dtype=np.float32, seed=0, **opts)
        runs[name] = (m, Adam(m.parameters(), lr=1e-4), [], [])
        print(f"{name}: {m.num_parameters():,} parameters, options {opts}")
    for r in range(args.rounds + 1):  # round 0 warms up (Numba compilation, allocator)
        for name, (m, opt, cpu, wall) in runs.items():
            t0, c0 = time.perf_counter(), time.process_time()
            m.zero_grad()
            loss, _ = m.forward_loss(batch)
            m.backward(np.full(B, 1.0 / B, np.float32))
            opt.step(m.gradients())
            if r:
                cpu.append(time.process_time() - c0)
                wall.append(time.perf_counter() - t0)
    fps = {name: (B * T / statistics.median(cpu), B * T / statistics.median(wall))
           for name, (_, _, cpu, wall) in runs.items()}
    for name, (c, w) in fps.items():
        print(f"{name}: {c:,.0f} input frames per CPU second, {w:,.0f} per wall second "
              f"(median of {args.rounds} steps of {B} x {T} frames)")
    print(f"conformer_ctc / ctc_blstm throughput ratio (CPU time): "
          f"{fps['conformer_ctc'][0] / fps['ctc_blstm'][0]:.2f}")
    print("load:", open("/proc/loadavg").read().strip())


if __name__ == "__main__":
    main()
