"""PER of an attention recognizer (LAS) with shallow fusion over a grid of LM weight x length reward, and
n-best rescoring over the same grid, on the first N utterances of a split. The encoder runs once per
utterance; every setting re-runs the beam search only.

    nice -n 0 .venv/bin/python experiments/lm/attention_fusion.py /tmp/attn_exp/las/best.npz \
        /work/data/synth_full --lms exp/lm/lstm_lm_phones/best.npz --split dev --utts 100 --beam 4 \
        --weights 0.3,0.5 --rewards 0,0.5,1.0 --out exp/lm/attention_fusion/dev_lstm.json

Fusion: decode/attention.py's beam search ranks s(y) = (1 - lambda) log P_att(y <eos>) +
lambda log P_ctc(y) + w log P_lm(y <eos>) + r (|y| + 1) [attn-dec:score] (lambda = the model's training
ctc_weight for beam search); rescoring: the beam without LM keeps its N = beam best and decode/rescore.py
re-ranks them by s_0(y) + w log P_lm(y <eos>) + r |y| [lm:rescore]. A ``gpt_lm`` goes through the context
window of decode/lm_window.py; how many row-steps needed it is printed (``window_steps``). Scored with the
39-phone folding (sclite counts).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from scratchasr.data.batch import make_batch
from scratchasr.data.corpus import read_split, scoring_tokens
from scratchasr.decode.attention import decode_attention
from scratchasr.decode.lm_window import ContextWindowLM, with_context_window
from scratchasr.decode.rescore import rescore_nbest
from scratchasr.inference import load, load_lm
from scratchasr.metrics import error_rate
from scratchasr.models.base import gather_state


def _floats(text: str) -> list:
    return [float(x) for x in text.split(",") if x.strip()]


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("am")
    ap.add_argument("corpus")
    ap.add_argument("--lms", default="", help="comma-separated LM checkpoints (empty: no-LM beam only)")
    ap.add_argument("--split", default="dev")
    ap.add_argument("--utts", type=int, default=100, help="the first N utterances of the split")
    ap.add_argument("--beam", type=int, default=4)
    ap.add_argument("--weights", default="0.3")
    ap.add_argument("--rewards", default="0.0")
    ap.add_argument("--no-rescore", action="store_true", help="fusion only")
    ap.add_argument("--no-fusion", action="store_true", help="rescoring only")
    ap.add_argument("--out", default=None, help="write every row as JSON here")
    args = ap.parse_args(argv)
    model, frontend = load(args.am)
    utts = read_split(args.corpus, args.split, model.units)[: args.utts]
    feats = [frontend.from_file(u.wav_path) for u in utts]
    refs = [scoring_tokens(u.tokens, model.scoring) for u in utts]
    lam = float(getattr(model, "ctc_weight", 0.0))
    t0 = time.perf_counter()
    memories = []                                   # one encoder pass per utterance, reused by every setting
    for f in feats:
        mem = model.encode(make_batch([f], [[]]))
        memories.append(gather_state(mem, np.array([0])))
    encode_s = time.perf_counter() - t0

    def decode(lm=None, w=0.0, r=0.0, nbest=None):
        out = []
        for mem in memories:
            res = decode_attention(model, mem, method="beam", beam_size=args.beam, lm=lm, lm_weight=w,
                                   length_reward=r, ctc_weight=lam, nbest=nbest)
            out.append(res[0])
        return out

    def per(hyps):
        er = error_rate(refs, [scoring_tokens(model.vocabulary.decode(list(h)), model.scoring) for h in hyps])
        return dict(per=round(100 * er.rate, 2), S=er.substitutions, D=er.deletions, I=er.insertions)

    rows = {}
    info = dict(am=args.am, split=args.split, utterances=len(utts), ref_phones=sum(map(len, refs)),
                beam=args.beam, ctc_weight=lam, encode_seconds=round(encode_s, 1),
                load_start=os.getloadavg()[0])
    print(json.dumps(info), flush=True)
    t = time.perf_counter()
    nbest = decode(nbest=args.beam)                 # the no-LM beam, its N best kept for rescoring
    rows["no LM"] = dict(per([h[0].tokens if h else () for h in nbest]),
                         seconds=round(time.perf_counter() - t, 1))
    print(json.dumps({"no LM": rows["no LM"]}), flush=True)
    for path in [p for p in args.lms.split(",") if p]:
        raw = load_lm(path, model.vocabulary)
        name = getattr(raw, "config", None) or getattr(getattr(raw, "lm", None), "config", {})
        name = name.get("name", Path(path).parent.name)
        lm = with_context_window(raw)               # the searches would wrap it too; kept to read its counter
        for w in _floats(args.weights):
            for r in _floats(args.rewards):
                if not args.no_fusion:
                    before = lm.window_steps if isinstance(lm, ContextWindowLM) else 0
                    t = time.perf_counter()
                    hyps = decode(lm, w, r)
                    row = dict(per(hyps), seconds=round(time.perf_counter() - t, 1),
                               load=round(os.getloadavg()[0], 2))
                    if isinstance(lm, ContextWindowLM):
                        row["window_steps"] = lm.window_steps - before
                    rows[f"{name} fusion w={w} r={r}"] = row
                    print(json.dumps({f"{name} fusion w={w} r={r}": row}), flush=True)
                if not args.no_rescore:
                    ranked = rescore_nbest(nbest, lm, lm_weight=w, insertion_bonus=r)
                    rows[f"{name} rescoring N={args.beam} w={w} r={r}"] = per(
                        [h[0].tokens if h else () for h in ranked])
                    print(json.dumps({f"{name} rescoring w={w} r={r}": rows[f"{name} rescoring N={args.beam} "
                                                                          f"w={w} r={r}"]}), flush=True)
    result = dict(info, load_end=os.getloadavg()[0], rows=rows)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
