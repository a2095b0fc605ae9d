"""Held-out perplexity of trained language models (and of an add-k bigram on the same text, for scale).

    nice .venv/bin/python experiments/lm/evaluate_ppl.py /work/data/synth_full \
        exp/lm/lstm_lm_phones/best.npz exp/lm/gpt_lm_phones/best.npz --text /work/data/lm_text/phones_6k.txt

Held-out text: the phone transcripts (61 TIMIT symbols, as the recognizer emits them) of the corpus' dev
and core_test splits, no sentence of which is in any LM's training text (experiments/lm/make_text.py).
Perplexity counts <eos> as a predicted token [lm:ppl].
"""

from __future__ import annotations

import argparse
import json

from scratchasr.data.corpus import read_split
from scratchasr.data.text import read_text_file
from scratchasr.decode.lm import BigramLM
from scratchasr.inference import load


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus")
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--text", default=None, help="the extra training text (for the bigram baseline)")
    ap.add_argument("--splits", default="dev,core_test")
    args = ap.parse_args(argv)
    out = {}
    vocab = None
    for ckpt in args.checkpoints:
        lm, _ = load(ckpt)
        vocab = lm.vocabulary
        for split in args.splits.split(","):
            seqs = [list(vocab.encode(u.tokens)) for u in read_split(args.corpus, split, "phones")]
            out[f"{lm.config['name']} {split}"] = round(lm.perplexity(seqs), 3)
    if vocab is not None:
        train = [u.tokens for u in read_split(args.corpus, "train", "phones")]
        if args.text:
            train += read_text_file(args.text, "phones")
        bigram = BigramLM.estimate([list(vocab.encode(t)) for t in train], len(vocab), k=0.1)
        for split in args.splits.split(","):
            seqs = [list(vocab.encode(u.tokens)) for u in read_split(args.corpus, split, "phones")]
            out[f"bigram(k=0.1) {split}"] = round(bigram.perplexity(seqs), 3)
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
