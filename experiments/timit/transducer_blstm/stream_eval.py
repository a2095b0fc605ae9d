"""Real-time factor, PER and emission delays of a transducer checkpoint, utterance by utterance.

    python experiments/timit/transducer_blstm/stream_eval.py EXP/best.npz /work/data/synth_full \
        --split core_test --chunk_ms 100 [--max_utts N] [--offline]

Streaming (unidirectional encoders): features of the whole file are computed first (the streaming
front end is not part of this measurement), then fed to ``TransducerStreamer`` in ``chunk_ms`` chunks;
the final result is checked against offline greedy decoding of the same features. ``--offline``
(any encoder) times ``model.decode`` on one utterance at a time instead.

RTF = decoding wall time / audio duration, one thread (run with OMP_NUM_THREADS=1 ...); features are
timed separately. Emission delay of a correctly recognised phone = the time the emitting encoder frame
has been heard minus the end of that phone in the synthesiser's .PHN segmentation. Encoder frame t
(stack k) has heard input frames up to k(t+1)-1, whose 25 ms window ends at ((k(t+1)-1) * 10 + 25) ms.
The Delta/Delta-Delta features (window 2 each) would add 40 ms look-ahead in a true streaming front end;
it is NOT included. Hypothesis and reference are aligned with a Levenshtein alignment over the
61-phone tokens; only phones aligned as correct enter the delay statistics.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from scratchasr.data.batch import make_batch
from scratchasr.data.corpus import scoring_tokens
from scratchasr.data.timit import read_corpus
from scratchasr.decode.transducer import TransducerStreamer
from scratchasr.features.audio import load_audio
from scratchasr.data.synth import speakers_of_voices
from scratchasr.inference import load
from scratchasr.metrics import error_rate

HOP_MS, WIN_MS = 10.0, 25.0


def align_correct(ref, hyp):
    """Pairs (i, j) with ref[i] == hyp[j] on a minimum-edit-distance alignment (ties: match first)."""
    n, m = len(ref), len(hyp)
    d = np.zeros((n + 1, m + 1), np.int64)
    d[:, 0] = np.arange(n + 1)
    d[0, :] = np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            d[i, j] = min(d[i - 1, j] + 1, d[i, j - 1] + 1, d[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]))
    pairs, i, j = [], n, m
    while i > 0 and j > 0:
        if ref[i - 1] == hyp[j - 1] and d[i, j] == d[i - 1, j - 1]:
            pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif d[i, j] == d[i - 1, j - 1] + 1:
            i, j = i - 1, j - 1
        elif d[i, j] == d[i - 1, j] + 1:
            i -= 1
        else:
            j -= 1
    return pairs[::-1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("data")
    ap.add_argument("--split", default="core_test")
    ap.add_argument("--chunk_ms", type=float, default=100.0)
    ap.add_argument("--max_utts", type=int, default=0)
    ap.add_argument("--max_symbols_per_frame", type=int, default=3)
    ap.add_argument("--offline", action="store_true")
    ap.add_argument("--voices", default="", help="synthetic corpus only: keep speakers of these voices "
                    "(comma-separated, from DATA/corpus.json)")
    args = ap.parse_args()
    model, frontend = load(args.checkpoint)
    vocab = model.vocabulary
    utts = read_corpus(args.data, args.split)
    if args.voices:
        utts = [u for u in utts if u.speaker in set(speakers_of_voices(args.data, args.voices))]
    if args.max_utts:
        utts = utts[:args.max_utts]
    k = model.stack.k
    chunk = max(1, int(round(args.chunk_ms / HOP_MS)))
    t_feat = t_dec = audio_s = 0.0
    refs, hyps, delays, mismatches = [], [], [], 0
    streamer = None
    if not args.offline:
        streamer = TransducerStreamer(model, max_symbols_per_frame=args.max_symbols_per_frame)
    for u in utts:
        y, sr = load_audio(u.wav_path)
        audio_s += len(y) / sr
        t0 = time.perf_counter()
        x = frontend.normalise(frontend.raw_features(y, sr, where=u.wav_path))
        t1 = time.perf_counter()
        t_feat += t1 - t0
        if args.offline:
            ids = model.decode(make_batch([x], [[]]), method="greedy",
                               max_symbols_per_frame=args.max_symbols_per_frame)[0]
            t_dec += time.perf_counter() - t1
        else:
            streamer.reset()
            for s in range(0, x.shape[0], chunk):
                streamer.accept(x[s:s + chunk])
            ids = streamer.finish()
            t_dec += time.perf_counter() - t1
            offline = model.decode(make_batch([x], [[]]), method="greedy",
                                   max_symbols_per_frame=args.max_symbols_per_frame)[0]
            mismatches += int(offline != ids)
            hyp = vocab.decode(ids)
            ref = [p for _, _, p in u.phones]
            ends_ms = [1000.0 * e / sr for _, e, _ in u.phones]
            for i, j in align_correct(ref, hyp):
                t = streamer.state.times[j]
                heard_ms = (k * (t + 1) - 1) * HOP_MS + WIN_MS
                delays.append(heard_ms - ends_ms[i])
        refs.append([p for _, _, p in u.phones])
        hyps.append(vocab.decode(ids))
    er = error_rate([scoring_tokens(r, model.scoring) for r in refs],
                    [scoring_tokens(h, model.scoring) for h in hyps])
    print(f"{args.checkpoint} {args.split}: {len(utts)} utterances, {audio_s:.1f} s of audio")
    print(f"PER {100 * er.rate:.2f} % (S {er.substitutions}, D {er.deletions}, I {er.insertions} "
          f"of {er.ref_tokens})"
          f" greedy, max {args.max_symbols_per_frame} labels/frame, {model.scoring}")
    how = "offline, one utterance at a time" if args.offline else f"streaming, {args.chunk_ms:g} ms chunks"
    print(f"RTF decoding {t_dec / audio_s:.4f} ({how}),"
          f" features {t_feat / audio_s:.4f}")
    if not args.offline:
        d = np.array(delays)
        print(f"streaming == offline greedy on {len(utts) - mismatches} / {len(utts)} utterances")
        print(f"emission delay over {d.size} correct phones: median {np.median(d):.0f} ms, "
              f"90th percentile {np.percentile(d, 90):.0f} ms, mean {d.mean():.0f} ms")


if __name__ == "__main__":
    main()
