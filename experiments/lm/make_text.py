"""Build the language-model training text for the synthetic corpus, with no dev/test sentence in it.

    nice .venv/bin/python experiments/lm/make_text.py /work/data/synth_full /work/data/lm_text

Sources: every quoted example sentence of WordNet 3.0's glosses (Debian ``wordnet-base``, 3 to 30 words:
a wider range than the corpus' 7-14) turned into phones with festival's CMU lexicon (scratchasr/data/
text.py); any sentence whose normalised text is a sentence of the corpus' dev, core_test or test split is
dropped. Writes OUT/phones.txt (one sentence per line, TIMIT phone symbols) and OUT/words.txt (normalised
text), and prints the counts and the overlap checks as JSON (also OUT/stats.json).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from scratchasr.data.corpus import normalise_text, read_split
from scratchasr.data.synth import wordnet_sentences
from scratchasr.data.text import build_lm_text, held_out_sentences


def main(corpus: str, out: str) -> dict:
    out_dir = Path(out)
    held = held_out_sentences(corpus)
    sentences = wordnet_sentences(min_words=3, max_words=30)
    stats = dict(corpus=corpus, held_out_sentences=len(held), wordnet_sentences=len(sentences))
    stats["phones"] = build_lm_text(sentences, out_dir / "phones.txt", units="phones", held_out=held)
    stats["words"] = build_lm_text(sentences, out_dir / "words.txt", units="words", held_out=held)
    train_text = {normalise_text(u.text) for u in read_split(corpus, "train", "words")}
    written = {line.strip() for line in (out_dir / "words.txt").read_text().splitlines()}
    stats["overlap_lm_text_vs_held_out"] = len(written & held)          # re-checked on the files written
    stats["overlap_train_transcripts_vs_held_out"] = len(train_text & held)
    stats["lm_text_sentences_also_in_train_transcripts"] = len(written & train_text)
    (out_dir / "stats.json").write_text(json.dumps(stats, indent=1))
    return stats


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    print(json.dumps(main(sys.argv[1], sys.argv[2]), indent=1))
