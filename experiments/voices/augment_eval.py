"""Phone error rate of checkpoints on a test split, clean and under fixed noisy, reverberant, telephone audio.

    .venv/bin/python experiments/voices/augment_eval.py DATA_DIR [CHECKPOINT ...] [--split S] [--pocketsphinx]

Each condition is drawn per utterance from ``default_rng([seed, condition, utterance])`` (``--seed``, default
1234), so every checkpoint is scored on the SAME corrupted audio: white and pink noise at 10 dB SNR, babble of
5 utterances of other speakers of the same split at 10 dB, a random room (the training sampler's ranges:
3-10 x 3-8 x 2.4-4 m, absorption 0.2-0.8, response cut at 0.5 s), and the telephone band with the G.711 mu-law
codec. Greedy decoding, 39-phone scoring (sclite counts). Prints a Markdown table (PER %).

``--pocketsphinx`` adds the peer of experiments/voices/RESULTS.md as a last column: pocketsphinx allphone
(``pocketsphinx_phones.py``: real-speech en-us model, its phone trigram) on the same corrupted audio, its
CMU phones folded to the 39 set and scored against the same references by the same counts.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

from scratchasr.data import augment as A
from scratchasr.data.corpus import read_split, scoring_tokens, spread_subset
from scratchasr.features import load_audio
from scratchasr.frontend import resample_to
from scratchasr.inference import load
from scratchasr.metrics import error_rate
from scratchasr.trainer import decode_features, score_hypotheses

CONDITIONS = ("clean", "white 10 dB", "pink 10 dB", "babble 10 dB", "room", "telephone + mu-law")


def corrupt(c: int, y: np.ndarray, sr: int, rng: np.random.Generator, others) -> np.ndarray:
    name = CONDITIONS[c]
    if name == "clean":
        return y
    if name.startswith(("white", "pink")):
        gen = A.white_noise if name.startswith("white") else A.pink_noise
        return A.add_noise(y, gen(len(y), rng), 10.0)
    if name.startswith("babble"):
        return A.add_noise(y, A.babble_noise(others(5, rng), len(y), rng), 10.0)
    if name == "room":
        r = A.random_room(rng)
        h = A.image_source_rir(r.size, r.source, r.mic, absorption=r.absorption, sample_rate=sr,
                               duration=min(A.eyring_rt60(r.size, r.absorption), 0.5))
        return A.reverberate(y, h, sample_rate=sr, direct_delay=math.dist(r.source, r.mic) / A.SPEED_OF_SOUND)
    return A.telephone(y, sr, codec=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data_dir")
    ap.add_argument("checkpoints", nargs="*")
    ap.add_argument("--split", default="core_test")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--max_utts", type=int, default=0, help="0: all; else evenly spread (a quick look)")
    ap.add_argument("--pocketsphinx", action="store_true", help="add pocketsphinx allphone as a last column")
    args = ap.parse_args(argv)
    if not args.checkpoints and not args.pocketsphinx:
        ap.error("checkpoints: give at least one checkpoint, or --pocketsphinx")
    utts = spread_subset(read_split(args.data_dir, args.split, "phones"), args.max_utts)
    models = [load(c) for c in args.checkpoints]
    sr = models[0][1].sample_rate if models else 16000
    ps = None
    if args.pocketsphinx:
        if sr != 16000:
            raise SystemExit(f"--pocketsphinx: the front end is {sr} Hz; pocketsphinx wants 16 kHz")
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import pocketsphinx_phones as ps
        ps_decoder = ps.decoder()
    waves = [resample_to(*load_audio(u.wav_path), sr) for u in utts]

    rows = []
    for c, name in enumerate(CONDITIONS):
        audio = []
        for i, (u, y) in enumerate(zip(utts, waves)):
            pool = [j for j, v in enumerate(utts) if v.speaker != u.speaker]

            def others(k, g, pool=pool):
                return [waves[j] for j in g.choice(pool, size=min(k, len(pool)), replace=False)]
            audio.append(corrupt(c, y, sr, np.random.default_rng([args.seed, c, i]), others))
        row = [name]
        for model, frontend in models:
            feats = [frontend.normalise(frontend.raw_features(z, sr)) for z in audio]
            hyps = decode_features(model, feats)
            er, _ = score_hypotheses(model.vocabulary, model.scoring, [u.tokens for u in utts], hyps)
            row.append(f"{100 * er.rate:.2f}")
        if ps is not None:
            hyps = [ps.fold_cmu(ps.decode_pcm(ps_decoder, z)) for z in audio]
            er = error_rate([scoring_tokens(u.tokens, "timit39") for u in utts], hyps)
            row.append(f"{100 * er.rate:.2f}")
        rows.append(row)
        print(" | ".join(row), flush=True)
    print(f"\n{args.split}: {len(utts)} utterances\n")
    names = list(args.checkpoints) + (["pocketsphinx"] if ps is not None else [])
    print("| condition | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
