"""Compare decoding rules of one attention checkpoint on the first N utterances of a split.

    python experiments/timit/attention/decode_options.py CHECKPOINT DATA [--split dev] [--n 20] [--beam 4]

Rows: greedy (attention only), beam (attention only, ctc_weight 0) and beam with joint CTC/attention
scoring at ctc_weight 0.3 and 0.5 (models with a CTC branch). Prints PER (S/D/I) and decoding time.
"""

import argparse
import time

from scratchasr.data.batch import make_batch
from scratchasr.data.corpus import read_split, scoring_tokens
from scratchasr.inference import load
from scratchasr.metrics import error_rate


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("data")
    ap.add_argument("--split", default="dev")
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--beam", type=int, default=4)
    args = ap.parse_args(argv)
    model, frontend = load(args.checkpoint)
    utts = read_split(args.data, args.split, model.units)[:args.n]
    feats = [frontend.from_file(u.wav_path) for u in utts]
    refs = [scoring_tokens(u.tokens, model.scoring) for u in utts]
    rules = [dict(method="greedy"), dict(method="beam", beam_size=args.beam, ctc_weight=0.0)]
    if getattr(model, "ctc_weight", 0) > 0:
        rules += [dict(method="beam", beam_size=args.beam, ctc_weight=w) for w in (0.3, 0.5)]
    for kw in rules:
        t = time.time()
        hyps = [model.decode(make_batch([f], [[]]), **kw)[0] for f in feats]
        er = error_rate(refs, [scoring_tokens(model.vocabulary.decode(h), model.scoring) for h in hyps])
        print(f"{kw}: PER {100 * er.rate:.2f} % (S {er.substitutions} D {er.deletions} I {er.insertions}) "
              f"{time.time() - t:.0f} s", flush=True)


if __name__ == "__main__":
    main()
