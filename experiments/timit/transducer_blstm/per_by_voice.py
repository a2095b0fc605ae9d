"""PER of a ``scratchasr decode --out DIR`` run split by the synthetic corpus's voices.

    python experiments/timit/transducer_blstm/per_by_voice.py /work/data/synth_full core_test DIR/hyp.text \
        --groups seen=slt_hts,slt unseen=awb,kal,ked,rms

Reads the references from the corpus (61 phones, folded to 39 for scoring as the trainer does) and the
hypotheses from the Kaldi-format ``hyp.text`` (utterance id, then tokens).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from scratchasr.data.corpus import read_split, scoring_tokens
from scratchasr.metrics import error_rate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("split")
    ap.add_argument("hyp_text")
    ap.add_argument("--groups", nargs="*", default=["seen=slt_hts,slt", "unseen=awb,kal,ked,rms"])
    args = ap.parse_args()
    table = json.loads((Path(args.data) / "corpus.json").read_text())["speakers"]
    voice = {s["id"]: s["voice"] for s in table}
    hyps = {}
    for line in Path(args.hyp_text).read_text().splitlines():
        parts = line.split()
        if parts:
            hyps[parts[0]] = parts[1:]
    utts = read_split(args.data, args.split, "phones")
    groups = [("all", None)] + [(g.split("=")[0], set(g.split("=")[1].split(","))) for g in args.groups]
    for name, voices in groups:
        sel = [u for u in utts if voices is None or voice[u.speaker] in voices]
        missing = [u.id for u in sel if u.id not in hyps]
        if missing:
            raise SystemExit(f"hyp_text: no hypothesis for {missing[0]} (and {len(missing) - 1} more)")
        er = error_rate([scoring_tokens(u.tokens, "timit39") for u in sel],
                        [scoring_tokens(hyps[u.id], "timit39") for u in sel])
        print(f"{args.split} {name:7s} {len(sel):4d} utts  PER {100 * er.rate:6.2f} %  (S {er.substitutions} "
              f"D {er.deletions} I {er.insertions} of {er.ref_tokens})")


if __name__ == "__main__":
    main()
