"""Error rate of a CTC recognizer with no LM, with shallow fusion and with n-best rescoring, on the first N
utterances of a split (the reference prefix beam search with a neural LM is slow on a shared CPU).

    nice .venv/bin/python experiments/lm/fusion.py /work/exp/ctc_blstm/best.npz /work/data/synth_full \
        --lms exp/lm/lstm_lm_phones/best.npz,exp/lm/gpt_lm_phones/best.npz --split dev --utts 60 \
        --beam 8 --weights 0.2,0.5,1.0 --token-threshold -12
    nice .venv/bin/python experiments/lm/fusion.py /work/exp/ctc_chars/best.npz /work/data/synth_full \
        --lms /work/exp/lm_chars/lstm_lm_chars/best.npz --split dev --utts 100 --weights 0.3,0.6 --bonuses 0,1

Fusion: decode/ctc.py's prefix beam search with the LM through its step interface, ranked by
log P_ctc + w log P_lm + b |y| (insertion bonus b per emitted token) [ctc-decode:fusion], one search per
(w, b) of ``--weights`` x ``--bonuses`` (or the pairs of ``--fusion``); rescoring: the same search without
LM keeps the beam's N best (N = beam) and decode/rescore.py re-ranks them by log P_ctc + w log P_lm + b |y|
[lm:rescore], for every (w, b) of ``--rescore-weights`` x ``--rescore-bonuses`` (default: the fusion grid;
or the pairs of ``--rescore``). An LM over another vocabulary is mapped by token (inference.load_lm).
Scoring: a phone model with the 39-phone folding (PER), a character model as ``scratchasr decode`` does
(CER without word boundaries, sclite -c, and WER: scratchasr.data.corpus.text_scoring_tokens); sclite counts.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

from scratchasr.data.batch import make_batch
from scratchasr.data.corpus import read_split, scoring_tokens, text_scoring_tokens
from scratchasr.decode.ctc import ctc_greedy_decode, ctc_prefix_beam_search
from scratchasr.decode.rescore import rescore_nbest
from scratchasr.inference import load, load_lm
from scratchasr.metrics import error_rate


def _floats(text: str) -> list:
    return [float(x) for x in text.split(",") if x.strip()]


def _pairs(text: str) -> list:
    """``"w:b,w:b"`` -> [(w, b), ...]."""
    out = []
    for item in text.split(","):
        w, _, b = item.partition(":")
        out.append((float(w), float(b or 0.0)))
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("am")
    ap.add_argument("corpus")
    ap.add_argument("--lms", required=True)
    ap.add_argument("--split", default="dev")
    ap.add_argument("--utts", type=int, default=60, help="the first N utterances of the split (0: all)")
    ap.add_argument("--beam", type=int, default=8)
    ap.add_argument("--weights", default="0.2,0.5,1.0", help="fusion LM weights")
    ap.add_argument("--bonuses", default="0", help="fusion insertion bonuses (per token)")
    ap.add_argument("--fusion", default=None, help="explicit fusion settings W:B,W:B (instead of the grid)")
    ap.add_argument("--rescore-weights", default=None, help="rescoring weights (default: --weights)")
    ap.add_argument("--rescore-bonuses", default=None, help="rescoring bonuses (default: --bonuses)")
    ap.add_argument("--rescore", default=None, help="explicit rescoring settings W:B,W:B")
    ap.add_argument("--token-threshold", type=float, default=-12.0,
                    help="every beam search skips symbols below this frame log-probability (speed)")
    ap.add_argument("--json", default=None, help="also write the rows to this file")
    args = ap.parse_args(argv)
    model, frontend = load(args.am)
    utts = read_split(args.corpus, args.split, model.units)
    utts = utts[: args.utts] if args.utts else utts
    feats = [frontend.from_file(u.wav_path) for u in utts]
    lp, lens = model.log_probs(make_batch(feats, [[] for _ in feats]))
    chars = model.units == "chars"
    if chars:
        refs = [text_scoring_tokens(u.tokens, "chars") for u in utts]
    else:
        refs = [scoring_tokens(u.tokens, model.scoring) for u in utts]

    def score(hyps):
        toks = [model.vocabulary.decode(h) for h in hyps]
        if not chars:
            er = error_rate(refs, [scoring_tokens(t, model.scoring) for t in toks])
            return dict(per=round(100 * er.rate, 2), S=er.substitutions, D=er.deletions, I=er.insertions)
        hyp = [text_scoring_tokens(t, "chars") for t in toks]
        c = error_rate([r[0] for r in refs], [h[0] for h in hyp])
        w = error_rate([r[1] for r in refs], [h[1] for h in hyp])
        return dict(cer=round(100 * c.rate, 2), S=c.substitutions, D=c.deletions, I=c.insertions,
                    wer=round(100 * w.rate, 2), wS=w.substitutions, wD=w.deletions, wI=w.insertions)

    fusion = _pairs(args.fusion) if args.fusion else list(itertools.product(_floats(args.weights),
                                                                             _floats(args.bonuses)))
    if args.rescore:
        rescore = _pairs(args.rescore)
    else:
        rescore = list(itertools.product(_floats(args.rescore_weights or args.weights),
                                         _floats(args.rescore_bonuses or args.bonuses)))
    thr = args.token_threshold
    rows = {"greedy": score(ctc_greedy_decode(lp, lens))}
    t = time.perf_counter()
    nbest = ctc_prefix_beam_search(lp, lens, beam_size=args.beam, nbest=args.beam, token_threshold=thr)
    rows[f"beam {args.beam}, no LM"] = dict(score([list(h[0].tokens) if h else [] for h in nbest]),
                                            seconds=round(time.perf_counter() - t, 1))
    print(json.dumps({k: rows[k] for k in rows}), flush=True)
    for path in args.lms.split(","):
        lm = load_lm(path, model.vocabulary)
        name = lm.config["name"]
        for w, b in rescore:
            rescored = rescore_nbest(nbest, lm, lm_weight=w, insertion_bonus=b)
            rows[f"{name} rescoring N={args.beam} w={w} b={b}"] = score([list(h[0].tokens) if h else []
                                                                        for h in rescored])
            print(json.dumps({k: rows[k] for k in list(rows)[-1:]}), flush=True)
        for w, b in fusion:
            t = time.perf_counter()
            fused = ctc_prefix_beam_search(lp, lens, beam_size=args.beam, lm=lm, lm_weight=w,
                                           insertion_bonus=b, token_threshold=thr)
            rows[f"{name} fusion w={w} b={b}"] = dict(score(fused), seconds=round(time.perf_counter() - t, 1))
            print(json.dumps({k: rows[k] for k in list(rows)[-1:]}), flush=True)
    ref_tokens = sum(len(r[0]) for r in refs) if chars else sum(map(len, refs))
    out = dict(am=args.am, split=args.split, utterances=len(utts), ref_tokens=ref_tokens,
               ref_words=sum(len(r[1]) for r in refs) if chars else None, beam=args.beam,
               token_threshold=thr, rows=rows)
    print(json.dumps(out, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return rows


if __name__ == "__main__":
    main()
