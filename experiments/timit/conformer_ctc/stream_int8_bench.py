"""Streaming latency / real-time factor per chunk size, and the int8 path's size and speed, for the
Conformer-CTC recipe model (random weights unless --checkpoint is given: timing does not depend on them).

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1 \
        .venv/bin/python experiments/timit/conformer_ctc/stream_int8_bench.py [--checkpoint EXP/best.npz]

Streaming: for chunk sizes of 4, 8 and 16 encoder frames (160, 320, 640 ms; left context 4 chunks,
causal convolution), one 3-second utterance (300 frames of 10 ms, 123-dim) is fed 40 ms at a time as
audio would arrive; the encoder emits a chunk as soon as its last subsampling window is complete.
  algorithmic latency = chunk duration + 30 ms (the last encoder frame of a chunk reads 3 input frames
                        past its own 4: frames 4t .. 4t + 6), for the first frame of each chunk;
  computational latency = CPU time of the call that completes a chunk (median);
  RTF = total CPU time / 3 s of audio.
The streamed output is checked against the offline chunk-masked model (max abs difference printed).
int8: bytes of the state (np.savez) and CPU time of an offline forward of 16 x 300 frames, float32 vs int8.
"""

import argparse
import io
import statistics
import time

import numpy as np

from scratchasr import models
from scratchasr.data.batch import make_batch
from scratchasr.nn.conformer_int8 import quantize_int8

OPTS = dict(hidden=144, num_layers=4, heads=4, ff_mult=4, conv_kernel=15, dropout=0.0, sub_channels=32)


def cpu(f):
    c0 = time.process_time()
    out = f()
    return out, time.process_time() - c0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default="")
    ap.add_argument("--frames", type=int, default=300)
    args = ap.parse_args()
    D, V, T = 123, 62, args.frames
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, T, D)).astype(np.float32)
    print(f"streaming, one utterance of {T} frames ({T / 100:.1f} s), fed 4 frames (40 ms) per call")
    print("chunk | algorithmic latency | computational latency per chunk (median, max) | RTF "
          "| max |stream - offline|")
    for C in (4, 8, 16):
        m = models.build("conformer_ctc", input_dim=D, vocab_size=V, dtype=np.float32, seed=0, chunk_size=C,
                         left_chunks=4, causal=True, **OPTS)
        m.eval()
        state = m.stream_init(1)
        m.stream(x[:, :40], state)  # warm-up (Numba, allocator) on a throw-away state
        state = m.stream_init(1)
        per_chunk, total, outs = [], 0.0, []
        for t in range(0, T, 4):
            final = t + 4 >= T
            (out, state), dt = cpu(lambda: m.stream(x[:, t:t + 4], state, final=final))
            total += dt
            outs.append(out)
            if out.shape[1]:
                per_chunk.append(dt)
        lp = np.concatenate(outs, axis=1)
        ref, _ = m.log_probs(make_batch([x[0]], [[1]]))
        diff = float(np.abs(lp - ref).max())
        print(f"{C * 40:4d} ms | {C * 40 + 30} ms | {1e3 * statistics.median(per_chunk):.0f} ms, "
              f"{1e3 * max(per_chunk):.0f} ms | {total / (T / 100):.3f} | {diff:.1e}")
    m = models.build("conformer_ctc", input_dim=D, vocab_size=V, dtype=np.float32, seed=0, **OPTS)
    if args.checkpoint:
        from scratchasr.inference import load
        m, _ = load(args.checkpoint)
    m.eval()
    q = quantize_int8(m)
    xb = rng.standard_normal((16, T, D)).astype(np.float32)
    L = np.full(16, T)
    print("\nint8 vs float32 (offline forward of 16 x 300 frames, CPU seconds, median of 3)")
    for name, model in (("float32", m), ("int8", q)):
        buf = io.BytesIO()
        np.savez(buf, **model.state_dict())
        model.encoder(xb[:2], L[:2])  # warm-up
        times = [cpu(lambda: model.logits(xb, L))[1] for _ in range(3)]
        print(f"{name}: state {buf.tell() / 1e6:.2f} MB, forward {statistics.median(times):.2f} s "
              f"({16 * T / statistics.median(times):,.0f} frames per CPU second)")
    print("load:", open("/proc/loadavg").read().strip())


if __name__ == "__main__":
    main()
