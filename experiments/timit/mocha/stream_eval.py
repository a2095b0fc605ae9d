"""Online decoding of a trained "mocha" model: feed each utterance in pieces, check the output against offline
hard decoding, and measure when each phone comes out relative to where it ends in the reference.

    .venv/bin/python experiments/timit/mocha/stream_eval.py EXP/best.npz DATA --split core_test --piece 10

For every utterance the features are fed to ``model.streamer()`` ``--piece`` frames (10 ms each) at a time.
Printed: how many utterances' streaming output differs from ``model.hard_decode`` (must be 0), the
PER of the streaming output, and the emission delay of each correctly recognised phone (aligned to the
reference with sclite's alignment): the audio consumed when the label was emitted (n frames of a 25 ms
window with a 10 ms shift: 10 n + 15 ms) minus the reference end of that phone (.PHN). A full-sequence
(offline) recogniser emits every phone only after the utterance has ended; its delay is printed too.
"""

from __future__ import annotations

import argparse

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("data_dir")
    ap.add_argument("--split", default="core_test")
    ap.add_argument("--piece", type=int, default=10, help="frames per accept() call (10 ms each)")
    ap.add_argument("--max_utts", type=int, default=0)
    args = ap.parse_args(argv)
    if args.piece < 1:
        raise SystemExit("piece: expected an integer >= 1")

    from scratchasr.data.batch import make_batch
    from scratchasr.data.corpus import read_split, scoring_tokens
    from scratchasr.data.timit import read_corpus
    from scratchasr.inference import load
    from scratchasr.metrics import align, error_rate

    model, frontend = load(args.checkpoint)
    if model.name != "mocha":
        raise SystemExit(f"checkpoint: a 'mocha' model is needed, got {model.name!r}")
    utts = read_split(args.data_dir, args.split, model.units)
    timit = {u.id: u for u in read_corpus(args.data_dir, args.split)}
    if args.max_utts:
        utts = utts[: args.max_utts]
    vocab, mismatches, delays, offline_delays, at_end = model.vocabulary, 0, [], [], 0
    refs, hyps, n_labels = [], [], 0
    for u in utts:
        x = frontend.normalise(frontend.file_features(u.wav_path))
        offline = model.hard_decode(make_batch([x], [[1]])).labels[0]
        s = model.streamer()
        got, when = [], []
        for start in range(0, x.shape[0], args.piece):
            new = s.accept(x[start:start + args.piece])
            got += new
            when += [min(start + args.piece, x.shape[0])] * len(new)
        new = s.finish()
        got += new
        when += [x.shape[0]] * len(new)
        at_end += len(new)
        n_labels += len(got)
        mismatches += got != offline
        hyp = vocab.decode(got)
        refs.append(scoring_tokens(u.tokens, model.scoring))
        hyps.append(scoring_tokens(hyp, model.scoring))
        ends = [e / 16.0 for _, e, _ in timit[u.id].phones]          # ms (16 kHz samples)
        utt_end_ms = 10.0 * x.shape[0] + 15.0
        j = k = 0
        for col in align(u.tokens, hyp):
            if col.op == "C":
                delays.append(10.0 * when[k] + 15.0 - ends[j])
                offline_delays.append(utt_end_ms - ends[j])
            j += col.op != "I"
            k += col.op != "D"
    er = error_rate(refs, hyps)
    d = np.array(delays)
    print(f"{len(utts)} utterances of {args.split}, pieces of {args.piece} frames ({10 * args.piece} ms)")
    print(f"streaming output != offline hard decoding: {mismatches} utterances")
    print(f"PER (streaming, {model.scoring}): {100 * er.rate:.2f} % (S {er.substitutions} D {er.deletions} "
          f"I {er.insertions}, {er.ref_tokens} reference tokens)")
    print(f"labels emitted before finish(): {n_labels - at_end} of {n_labels}")
    if d.size:
        print(f"emission delay after the reference phone end, {d.size} correct phones: "
              f"median {np.median(d):.0f} ms, mean {d.mean():.0f} ms, "
              f"90th percentile {np.percentile(d, 90):.0f} ms; "
              f"offline (after the utterance): median {np.median(offline_delays):.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
