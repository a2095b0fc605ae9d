"""PER and decoding time of greedy, modified beam and Graves beam search on one checkpoint.

    python experiments/timit/transducer_blstm/decode_speed.py EXP/best.npz /work/data/synth_full \
        --split core_test --max_utts 50 --methods greedy,beam:4,beam:8,graves:4

Each utterance is decoded alone (batch of one) after the encoder has run once; the time printed is
the search alone, per second of audio (a real-time factor of the search, one thread), next to the
encoder's. Optional ``--lm_weight`` fuses a bigram estimated from the training transcripts.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from scratchasr.data.corpus import read_split, scoring_tokens
from scratchasr.decode import transducer as td
from scratchasr.decode.lm import BigramLM
from scratchasr.features.audio import load_audio
from scratchasr.data.synth import speakers_of_voices
from scratchasr.inference import load
from scratchasr.metrics import error_rate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("data")
    ap.add_argument("--split", default="core_test")
    ap.add_argument("--max_utts", type=int, default=50)
    ap.add_argument("--methods", default="greedy,beam:4,beam:8,graves:4")
    ap.add_argument("--lm_weight", type=float, default=0.0)
    ap.add_argument("--length_reward", type=float, default=0.0)
    ap.add_argument("--voices", default="", help="synthetic corpus only: keep speakers of these voices "
                    "(comma-separated, from DATA/corpus.json)")
    args = ap.parse_args()
    model, frontend = load(args.checkpoint)
    vocab = model.vocabulary
    utts = read_split(args.data, args.split, "phones")
    if args.voices:
        utts = [u for u in utts if u.speaker in set(speakers_of_voices(args.data, args.voices))]
    utts = utts[:args.max_utts or None]
    lm = None
    if args.lm_weight:
        train = read_split(args.data, "train", "phones")
        lm = BigramLM.estimate([vocab.encode(u.tokens) for u in train], len(vocab), k=0.5, exclude=(0,))
    encoded, audio_s, t_enc = [], 0.0, 0.0
    for u in utts:
        y, sr = load_audio(u.wav_path)
        audio_s += len(y) / sr
        x = frontend.normalise(frontend.raw_features(y, sr, where=u.wav_path))
        t0 = time.perf_counter()
        f, fl = model.encode(x[None], np.array([x.shape[0]]))
        t_enc += time.perf_counter() - t0
        encoded.append(f[0, :fl[0]])
    refs = [scoring_tokens(u.tokens, model.scoring) for u in utts]
    print(f"{args.checkpoint} {args.split}: {len(utts)} utterances, {audio_s:.1f} s audio; encoder RTF "
          f"{t_enc / audio_s:.4f}" + (f"; bigram LM weight {args.lm_weight}" if lm else ""))
    for spec in args.methods.split(","):
        name, _, w = spec.partition(":")
        t0 = time.perf_counter()
        hyps = []
        for f in encoded:
            if name == "greedy":
                ids = td.greedy_search(model, f[None], np.array([f.shape[0]]))[0]
            elif name == "beam":
                ids = list(td.modified_beam_search(model, f, beam_size=int(w), lm=lm,
                                                   lm_weight=args.lm_weight,
                                                   length_reward=args.length_reward)[0].tokens)
            elif name == "graves":
                ids = list(td.graves_beam_search(model, f, beam_size=int(w), lm=lm, lm_weight=args.lm_weight,
                                                 length_reward=args.length_reward)[0].tokens)
            else:
                raise SystemExit(f"--methods: unknown method {name!r}")
            hyps.append(scoring_tokens(vocab.decode(ids), model.scoring))
        dt = time.perf_counter() - t0
        er = error_rate(refs, hyps)
        print(f"  {spec:10s} PER {100 * er.rate:6.2f} % (S {er.substitutions} D {er.deletions} "
              f"I {er.insertions} of {er.ref_tokens})  search RTF {dt / audio_s:.4f}")


if __name__ == "__main__":
    main()
