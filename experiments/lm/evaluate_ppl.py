"""Held-out perplexity of trained language models (and of an add-k bigram on the same text, for scale).

    nice .venv/bin/python experiments/lm/evaluate_ppl.py /work/data/synth_full \
        exp/lm/lstm_lm_phones/best.npz exp/lm/gpt_lm_phones/best.npz --text /work/data/lm_text/phones_6k.txt
    nice .venv/bin/python experiments/lm/evaluate_ppl.py /work/data/synth_full \
        /work/exp/lm_chars/lstm_lm_chars/best.npz /work/exp/lm_chars/gpt_lm_chars/best.npz \
        --text /work/data/lm_text/words_8k.txt

Held-out text: the transcripts of the corpus' dev and core_test splits in each LM's units (the checkpoint's
``units``: the 61 TIMIT phone symbols as the phone recognizer emits them, or the character recipe's
characters with ``|`` between words), no sentence of which is in any LM's training text
(experiments/lm/make_text.py, experiments/lm/subset_text.py). Perplexity is per token (phone or character,
``|`` included) and counts <eos> as a predicted token [lm:ppl]. The bigram baseline is estimated on the
training transcripts plus ``--text`` in the units of the checkpoints given (one units per call).
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
    vocab, units = None, None
    for ckpt in args.checkpoints:
        lm, _ = load(ckpt)
        if units is not None and (lm.units, lm.vocabulary.tokens) != (units, vocab.tokens):
            raise SystemExit(f"checkpoints: {ckpt} has other units or vocabulary than {args.checkpoints[0]}")
        vocab, units = lm.vocabulary, lm.units
        for split in args.splits.split(","):
            seqs = [list(vocab.encode(u.tokens)) for u in read_split(args.corpus, split, units)]
            out[f"{lm.config['name']} {split}"] = round(lm.perplexity(seqs), 3)
    if vocab is not None:
        train = [u.tokens for u in read_split(args.corpus, "train", units)]
        if args.text:
            train += read_text_file(args.text, units)
        bigram = BigramLM.estimate([list(vocab.encode(t)) for t in train], len(vocab), k=0.1)
        for split in args.splits.split(","):
            seqs = [list(vocab.encode(u.tokens)) for u in read_split(args.corpus, split, units)]
            out[f"bigram(k=0.1) {split}"] = round(bigram.perplexity(seqs), 3)
            out[f"tokens {split}"] = sum(len(s) + 1 for s in seqs)
    out["units"] = units
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
