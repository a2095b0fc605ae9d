"""Streaming recognition with a Conformer checkpoint (transducer or CTC): PER, stream == offline, real-time
factor and emission delays, optionally at another chunk size than the one it was trained with, or int8.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1 .venv/bin/python \
        experiments/timit/conformer_transducer/stream_eval.py EXP/best.npz /work/data/synth_full \
        --split core_test [--chunk_size 8] [--piece_ms 40] [--max_utts N] [--int8] [--full_context]

Features of the whole file are computed first (timed separately; ``scratchasr.streaming.StreamingFrontend``
produces the same frames incrementally, tested there), then fed to ``ConformerStreamer`` ``piece_ms`` at a
time. After the last piece, the streamed labels are compared with ``model.decode`` (greedy) of the whole
utterance under the same chunk mask: they must be identical.

Emission delay of a correctly recognised phone = the audio heard when the piece that made the streamer emit
it had been fed (input frames fed so far: the last one's 25 ms window ends at ``(n - 1) * 10 + 25`` ms) minus
the end of that phone in the synthesiser's .PHN segmentation. It includes the chunk's algorithmic latency
and the piece granularity (``piece_ms``), but not the 40 ms look-ahead of the Delta/Delta-Delta features
nor the computation time. Hypothesis and reference are aligned with a Levenshtein alignment (61 phones);
only phones aligned as correct enter the delay statistics.

``--chunk_size N`` rebuilds the model with another chunk (encoder frames of 40 ms; the weights are those
trained with the checkpoint's chunk). ``--full_context`` evaluates the same weights offline with full
attention and a non-causal mask (chunk_size 0); depthwise convolutions stay causal as trained.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np

from scratchasr import models
from scratchasr.data.batch import make_batch
from scratchasr.data.corpus import scoring_tokens
from scratchasr.data.timit import read_corpus
from scratchasr.features.audio import load_audio
from scratchasr.inference import load
from scratchasr.io import load_checkpoint
from scratchasr.metrics import error_rate
from scratchasr.models.conformer import ConformerStreamer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "transducer_blstm"))
from stream_eval import align_correct  # noqa: E402  (the Levenshtein pairing of the BiLSTM transducer)

HOP_MS, WIN_MS = 10.0, 25.0


def load_with(checkpoint, **options):
    """``inference.load`` with some model options replaced (same weights)."""
    model, frontend = load(checkpoint)
    if not options:
        return model, frontend
    arrays, _, meta = load_checkpoint(str(checkpoint))
    cfg = copy.deepcopy(meta["model"])
    cfg["options"].update(options)
    new = models.build_from_config(cfg)
    new.load_state_dict({k: v for k, v in arrays.items() if not k.startswith("frontend.")})
    new.eval()
    new.vocabulary, new.scoring = model.vocabulary, model.scoring
    if hasattr(model, "units"):
        new.units = model.units
    return new, frontend


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("data")
    ap.add_argument("--split", default="core_test")
    ap.add_argument("--chunk_size", type=int, default=0, help="0: the checkpoint's")
    ap.add_argument("--full_context", action="store_true")
    ap.add_argument("--piece_ms", type=float, default=40.0)
    ap.add_argument("--max_utts", type=int, default=0)
    ap.add_argument("--int8", action="store_true")
    ap.add_argument("--causal", action="store_true", help="force causal=True (only to exercise this script "
                    "on an offline checkpoint)")
    args = ap.parse_args()
    over = {}
    if args.chunk_size:
        over["chunk_size"] = args.chunk_size
    if args.causal:
        over["causal"] = True
    if args.full_context:
        over.update(chunk_size=0, left_chunks=-1)
    model, frontend = load_with(args.checkpoint, **over)
    if args.int8:
        from scratchasr.nn.conformer_int8 import quantize_int8
        vocab, scoring = model.vocabulary, model.scoring
        model = quantize_int8(model)
        model.vocabulary, model.scoring = vocab, scoring
    vocab = model.vocabulary
    utts = read_corpus(args.data, args.split)
    if args.max_utts:
        utts = utts[:args.max_utts]
    piece = max(1, int(round(args.piece_ms / HOP_MS)))
    streaming = not args.full_context
    streamer = ConformerStreamer(model) if streaming else None
    t_feat = t_dec = t_off = audio_s = 0.0
    refs, hyps, delays, mismatches = [], [], [], 0
    for u in utts:
        y, sr = load_audio(u.wav_path)
        audio_s += len(y) / sr
        t0 = time.perf_counter()
        x = frontend.normalise(frontend.raw_features(y, sr, where=u.wav_path))
        t1 = time.perf_counter()
        t_feat += t1 - t0
        offline = model.decode(make_batch([x], [[]]))[0]
        t2 = time.perf_counter()
        t_off += t2 - t1
        ref = [p for _, _, p in u.phones]
        if streaming:
            streamer.reset()
            heard = []                       # heard[j]: ms of audio fed when label j appeared
            for s in range(0, x.shape[0], piece):
                n_fed = min(x.shape[0], s + piece)
                ids = streamer.accept(x[s:s + piece])
                heard += [(n_fed - 1) * HOP_MS + WIN_MS] * (len(ids) - len(heard))
            ids = streamer.finish()
            heard += [(x.shape[0] - 1) * HOP_MS + WIN_MS] * (len(ids) - len(heard))
            t_dec += time.perf_counter() - t2
            mismatches += int(offline != ids)
            hyp = vocab.decode(ids)
            ends_ms = [1000.0 * e / sr for _, e, _ in u.phones]
            for i, j in align_correct(ref, hyp):
                delays.append(heard[j] - ends_ms[i])
        else:
            hyp = vocab.decode(offline)
        refs.append(ref)
        hyps.append(hyp)
    er = error_rate([scoring_tokens(r, model.scoring) for r in refs],
                    [scoring_tokens(h, model.scoring) for h in hyps])
    opts = model.config["options"]
    print(f"{args.checkpoint} {args.split}: {len(utts)} utterances, {audio_s:.1f} s of audio; "
          f"chunk_size {opts.get('chunk_size')} ({40 * opts.get('chunk_size', 0)} ms), left_chunks "
          f"{opts.get('left_chunks')}, causal {opts.get('causal')}{', int8' if args.int8 else ''}")
    print(f"PER {100 * er.rate:.2f} % (S {er.substitutions}, D {er.deletions}, I {er.insertions} "
          f"of {er.ref_tokens}) greedy, {model.scoring}")
    print(f"RTF offline decode {t_off / audio_s:.4f}, features {t_feat / audio_s:.4f}")
    if streaming:
        d = np.array(delays)
        print(f"RTF streaming ({args.piece_ms:g} ms pieces) {t_dec / audio_s:.4f}")
        print(f"streaming == offline greedy on {len(utts) - mismatches} / {len(utts)} utterances")
        print(f"emission delay over {d.size} correct phones: median {np.median(d):.0f} ms, "
              f"90th percentile {np.percentile(d, 90):.0f} ms, mean {d.mean():.0f} ms")


if __name__ == "__main__":
    main()
