"""PER and decoding CPU time of a trained conformer checkpoint, float32 versus int8 (quantize_int8), and the
size of each model's state on disk.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1 \
        .venv/bin/python experiments/timit/conformer_ctc/eval_int8.py EXP/best.npz DATA [--split core_test]

Greedy decoding; PER on the 39-phone folding as `scratchasr decode` scores it.
"""

import argparse
import io
import time

import numpy as np

from scratchasr.data.corpus import read_split, scoring_tokens
from scratchasr.inference import load
from scratchasr.metrics import error_rate
from scratchasr.nn.conformer_int8 import quantize_int8
from scratchasr.trainer import decode_features


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("data")
    ap.add_argument("--split", default="core_test")
    args = ap.parse_args()
    model, frontend = load(args.checkpoint)
    utts = read_split(args.data, args.split, model.units)
    feats = [frontend.from_file(u.wav_path) for u in utts]
    frames = sum(f.shape[0] for f in feats)
    refs = [scoring_tokens(u.tokens, model.scoring) for u in utts]
    print(f"{args.split}: {len(utts)} utterances, {frames} frames ({frames / 100:.0f} s of audio)")
    for name, m in (("float32", model), ("int8", quantize_int8(model))):
        buf = io.BytesIO()
        np.savez(buf, **m.state_dict())
        c0 = time.process_time()
        hyps = decode_features(m, feats, beam=1, batch_size=16, progress=False)
        cpu = time.process_time() - c0
        er = error_rate(refs, [scoring_tokens(m.vocabulary.decode(h), m.scoring) for h in hyps])
        print(f"{name}: PER {100 * er.rate:.2f} % (S {er.substitutions} D {er.deletions} "
              f"I {er.insertions} of {er.ref_tokens}), state {buf.tell() / 1e6:.2f} MB, "
              f"decoding {cpu:.1f} CPU s (RTF {cpu / (frames / 100):.4f} on one core)")
    print("load:", open("/proc/loadavg").read().strip())


if __name__ == "__main__":
    main()
