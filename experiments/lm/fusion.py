"""PER of a CTC recognizer with no LM, with shallow fusion and with n-best rescoring, on the first N
utterances of a split (the reference prefix beam search with a neural LM is slow on a shared CPU).

    nice .venv/bin/python experiments/lm/fusion.py /work/exp/ctc_blstm/best.npz /work/data/synth_full \
        --lms exp/lm/lstm_lm_phones/best.npz,exp/lm/gpt_lm_phones/best.npz --split dev --utts 60 \
        --beam 8 --weights 0.2,0.5,1.0 --token-threshold -12

Fusion: decode/ctc.py's prefix beam search with the LM through its step interface [ctc-decode:fusion];
rescoring: the same search without LM keeps the beam's N best (N = beam) and decode/rescore.py re-ranks
them by log P_ctc + w log P_lm [lm:rescore]. Scored with the 39-phone folding (sclite counts).
"""

from __future__ import annotations

import argparse
import json
import time

from scratchasr.data.batch import make_batch
from scratchasr.data.corpus import read_split, scoring_tokens
from scratchasr.decode.ctc import ctc_greedy_decode, ctc_prefix_beam_search
from scratchasr.decode.rescore import rescore_nbest
from scratchasr.inference import load, load_lm
from scratchasr.metrics import error_rate


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("am")
    ap.add_argument("corpus")
    ap.add_argument("--lms", required=True)
    ap.add_argument("--split", default="dev")
    ap.add_argument("--utts", type=int, default=60)
    ap.add_argument("--beam", type=int, default=8)
    ap.add_argument("--weights", default="0.2,0.5,1.0")
    ap.add_argument("--token-threshold", type=float, default=-12.0,
                    help="every beam search skips symbols below this frame log-probability (speed)")
    args = ap.parse_args(argv)
    model, frontend = load(args.am)
    utts = read_split(args.corpus, args.split, model.units)[: args.utts]
    feats = [frontend.from_file(u.wav_path) for u in utts]
    lp, lens = model.log_probs(make_batch(feats, [[] for _ in feats]))
    refs = [scoring_tokens(u.tokens, model.scoring) for u in utts]

    def per(hyps):
        er = error_rate(refs, [scoring_tokens(model.vocabulary.decode(h), model.scoring) for h in hyps])
        return dict(per=round(100 * er.rate, 2), S=er.substitutions, D=er.deletions, I=er.insertions)

    rows = {"greedy": per(ctc_greedy_decode(lp, lens))}
    thr = args.token_threshold
    nbest = ctc_prefix_beam_search(lp, lens, beam_size=args.beam, nbest=args.beam, token_threshold=thr)
    rows[f"beam {args.beam}, no LM"] = per([list(h[0].tokens) if h else [] for h in nbest])
    for path in args.lms.split(","):
        lm = load_lm(path, model.vocabulary)
        name = lm.config["name"]
        for w in [float(x) for x in args.weights.split(",")]:
            t = time.perf_counter()
            fused = ctc_prefix_beam_search(lp, lens, beam_size=args.beam, lm=lm, lm_weight=w,
                                           token_threshold=thr)
            rows[f"{name} fusion w={w}"] = dict(per(fused), seconds=round(time.perf_counter() - t, 1))
            rescored = rescore_nbest(nbest, lm, lm_weight=w)
            rows[f"{name} rescoring N={args.beam} w={w}"] = per([list(h[0].tokens) if h else []
                                                                for h in rescored])
            print(json.dumps({k: rows[k] for k in list(rows)[-2:]}), flush=True)
    print(json.dumps(dict(split=args.split, utterances=len(utts), ref_phones=sum(map(len, refs)), rows=rows),
                     indent=1))
    return rows


if __name__ == "__main__":
    main()
