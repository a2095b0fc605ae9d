"""A seeded random subset of an LM text file, with the overlap with the held-out sentences checked.

    nice .venv/bin/python experiments/lm/subset_text.py /work/data/synth_full /work/data/lm_text/words.txt \
        /work/data/lm_text/words_8k.txt --n 8000 --units chars

Lines ``np.random.default_rng(seed).choice(len(lines), n, replace=False)`` of IN (kept in file order) are
written to OUT. Printed as JSON: sentences and tokens in ``units`` (``chars``: the recipe's characters, ``|``
between words, as the trainer reads the file through scratchasr.data.text.read_text_file), the longest
sentence, and the overlap of the subset and of the corpus' training transcripts with the normalised
sentences of the dev, core_test and test splits (must be 0; the script fails otherwise).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from scratchasr.data.corpus import normalise_text, read_split
from scratchasr.data.text import held_out_sentences, read_text_file


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus")
    ap.add_argument("text_in")
    ap.add_argument("text_out")
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--units", default="chars", choices=["chars", "words"])
    args = ap.parse_args(argv)
    lines = [line for line in Path(args.text_in).read_text().splitlines() if line.strip()]
    if not 0 < args.n <= len(lines):
        raise SystemExit(f"n: expected 1..{len(lines)}, got {args.n}")
    pick = np.sort(np.random.default_rng(args.seed).choice(len(lines), args.n, replace=False))
    Path(args.text_out).write_text("".join(lines[i] + "\n" for i in pick))
    held = held_out_sentences(args.corpus)
    subset = [toks for toks in read_text_file(args.text_out, args.units)]
    train = read_split(args.corpus, "train", args.units)
    as_text = {normalise_text(lines[i]) for i in pick}
    stats = dict(text_in=args.text_in, text_out=args.text_out, seed=args.seed, sentences=len(subset),
                 tokens=sum(map(len, subset)), longest=max(map(len, subset)),
                 train_transcripts=len(train), train_tokens=sum(len(u.tokens) for u in train),
                 train_longest=max(len(u.tokens) for u in train), held_out_sentences=len(held),
                 overlap_subset_vs_held_out=len(as_text & held),
                 overlap_train_transcripts_vs_held_out=len({normalise_text(u.text) for u in train} & held))
    print(json.dumps(stats, indent=1))
    if stats["overlap_subset_vs_held_out"] or stats["overlap_train_transcripts_vs_held_out"]:
        raise SystemExit("overlap with the held-out sentences is not 0")
    return stats


if __name__ == "__main__":
    main()
