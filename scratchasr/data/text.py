"""Text for language models: phone transcriptions of plain text, held-out checks, and the trainer's text data.

Language models train on text, not audio. ``scratchasr train`` with a language model (``IS_LM``) reads the
training and dev transcripts of ``data_dir`` in the recipe's ``units`` (no audio, no features) plus, with
the trainer key ``text_train``, a text file: one sentence per line, tokens in the recipe's units
(``phones``: phone symbols separated by spaces; ``words``/``chars``: plain text, normalised as the corpus
transcripts by :func:`scratchasr.data.corpus.normalise_text`).

Phone text from words (:func:`words_to_phones`): the CMU pronouncing dictionary shipped with festival
(Debian ``festlex-cmu``, ``cmudict-0.4.out``, the lexicon festival's voices read; its phones are ARPAbet,
all of them TIMIT symbols), the first pronunciation of each word, ``h#`` at both ends and ``pau`` at
commas, as the synthetic corpus labels its utterances (scratchasr/data/synth.py). Festival's phrase
breaks and post-lexical reductions (``to`` -> ``t ax``) are not modelled, so the text is close to, not
identical with, the corpus' transcriptions. Sentences with a word missing from the dictionary are
skipped (festival would spell them with letter-to-sound rules).

Held-out text: :func:`held_out_sentences` collects the normalised sentences of the dev and test splits;
:func:`build_lm_text` drops every such sentence and reports the overlap that remains (0 by construction,
checked again on the output).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np

from ._text import read_lines
from .batch import Batch, make_batch
from .corpus import CorpusUtterance, _tokens_from_text, build_vocabulary, normalise_text, read_split

__all__ = ["CMU_LEXICON", "read_cmu_lexicon", "words_to_phones", "held_out_sentences", "build_lm_text",
           "read_text_file", "TextSplit", "prepare_text_data", "HELD_OUT_SPLITS"]

CMU_LEXICON = Path("/usr/share/festival/dicts/cmu/cmudict-0.4.out")
HELD_OUT_SPLITS = ("dev", "core_test", "test")
_ENTRY = re.compile(r'^\("((?:[^"\\]|\\.)*)" (\S+) \((.*)\)\)\s*$')


def read_cmu_lexicon(path=CMU_LEXICON) -> Dict[str, List[str]]:
    """Festival's CMU lexicon: lower-case word -> phones of its first entry (stress marks dropped).

    Entries look like ``("aardvark" nil (((aa r d) 1) ((v aa r k) 1)))``: syllables with stress."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no CMU lexicon at {path} (`apt-get install festlex-cmu`)")
    lex: Dict[str, List[str]] = {}
    for line in path.read_text(encoding="latin-1").splitlines():     # ASCII in practice; never fails
        m = _ENTRY.match(line.strip())
        if not m:
            continue
        syllables = re.findall(r"\(\(([a-z ]+)\) \d\)", m.group(3))
        phones = [p for s in syllables for p in s.split()]
        if phones:
            lex.setdefault(m.group(1).lower(), phones)
    if not lex:
        raise ValueError(f"path: {path} holds no lexicon entries of festival's form")
    return lex


def words_to_phones(text: str, lexicon: Dict[str, List[str]]) -> Optional[List[str]]:
    """``h# <phones of each word, pau at commas> h#``, or None when a word is not in ``lexicon``."""
    out = ["h#"]
    for chunk_index, chunk in enumerate(text.split(",")):
        words = normalise_text(chunk).split()
        if not words:
            continue
        if chunk_index and len(out) > 1:
            out.append("pau")
        for w in words:
            if w not in lexicon:
                return None
            out += lexicon[w]
    return out + ["h#"] if len(out) > 1 else None


def held_out_sentences(data_dir, splits: Sequence[str] = HELD_OUT_SPLITS) -> set:
    """Normalised texts of every utterance of the held-out splits of ``data_dir`` (missing splits skipped)."""
    held = set()
    for split in splits:
        try:
            utts = read_split(data_dir, split, "words")
        except (ValueError, FileNotFoundError):
            continue
        held |= {normalise_text(u.text) for u in utts}
    return held


def build_lm_text(sentences: Iterable[str], out, *, units: str = "phones", held_out: Iterable[str] = (),
                  lexicon: Optional[Dict[str, List[str]]] = None) -> dict:
    """Write ``sentences`` (plain text) to ``out`` in ``units``, one per line, leaving out any sentence
    whose normalised text is in ``held_out`` (and, for phones, any with a word missing from ``lexicon``).

    Returns counts: ``written``, ``dropped_held_out``, ``dropped_oov``, ``duplicates``, ``overlap`` (the
    held-out sentences still present in the written text: 0)."""
    if units not in ("phones", "words", "chars"):
        raise ValueError(f"units: expected 'phones', 'words' or 'chars', got {units!r}")
    held = {normalise_text(s) for s in held_out}
    if units == "phones" and lexicon is None:
        lexicon = read_cmu_lexicon()
    lines, seen = [], set()
    stats = dict(written=0, dropped_held_out=0, dropped_oov=0, duplicates=0)
    for s in sentences:
        norm = normalise_text(s)
        if not norm:
            continue
        if norm in held:
            stats["dropped_held_out"] += 1
            continue
        if norm in seen:
            stats["duplicates"] += 1
            continue
        if units == "phones":
            phones = words_to_phones(s, lexicon)
            if phones is None:
                stats["dropped_oov"] += 1
                continue
            lines.append(" ".join(phones))
        else:
            lines.append(norm)
        seen.add(norm)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text("".join(line + "\n" for line in lines))
    stats["written"] = len(lines)
    stats["overlap"] = len(seen & held)
    return stats


def read_text_file(path, units: str) -> List[List[str]]:
    """Token lists of a text file (one sentence per line; empty lines skipped) in ``units``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"text_train: no such file: {path}")
    return [_tokens_from_text(line, units) for line in read_lines(path) if line.strip()]


class TextSplit:
    """One split of sentences for a language model, as the trainer uses a split (``len``, ``batch``, ...).

    ``feats`` holds the label arrays themselves: the trainer buckets batches by ``feats[i].shape[0]``, and a
    language model's sequence length is its number of tokens. ``batch`` returns ``Batch(feats=None, ...)``
    whose ``feat_lengths`` counts the positions the LM reads per sentence (tokens + 1: ``<sos>`` or
    ``<eos>``), so the trainer's frames per second are tokens per second."""

    def __init__(self, utts: List[CorpusUtterance], labels: List[Optional[np.ndarray]]):
        self.utts, self.labels = utts, labels
        self.feats = [y if y is not None else np.zeros(0, np.int64) for y in labels]

    def __len__(self) -> int:
        return len(self.utts)

    def batch(self, idx, *, augment=None) -> Batch:
        b = make_batch(None, [self.labels[i] for i in idx], ids=[self.utts[i].id for i in idx])
        return b._replace(feat_lengths=b.target_lengths + 1)


def prepare_text_data(cfg, frontend):
    """The trainer's data step for a language model: -> (train TextSplit, dev TextSplit, vocabulary, {}).

    Training sentences: the ``train_split`` transcripts of ``data_dir`` (``max_train_utts`` of them) plus
    every line of ``cfg.text_train`` (if set); dev: the ``dev_split`` transcripts (``max_dev_utts``).
    No audio is read. The front end gets an identity CMVN so that checkpoints keep their usual layout."""
    tr = read_split(cfg.data_dir, cfg.train_split, cfg.units)
    dv = read_split(cfg.data_dir, cfg.dev_split, cfg.units)
    if not tr:
        raise ValueError(f"data_dir: split {cfg.train_split!r} of {cfg.data_dir} holds no utterances")
    tr = tr[: cfg.max_train_utts] if cfg.max_train_utts else tr
    dv = dv[: cfg.max_dev_utts] if cfg.max_dev_utts else dv
    text_train = getattr(cfg, "text_train", "")
    if text_train:
        extra = read_text_file(text_train, cfg.units)
        tr = tr + [CorpusUtterance(f"text-{i + 1}", "text", "", toks) for i, toks in enumerate(extra)]
    tr = [u for u in tr if u.tokens]
    vocab = build_vocabulary(cfg.units, tr)
    if frontend.mean is None:
        frontend.mean, frontend.var = np.zeros(frontend.dim), np.ones(frontend.dim)
    train = TextSplit(tr, [vocab.encode(u.tokens, where=f"utterance {u.id}") for u in tr])
    dev = TextSplit(dv, [vocab.encode(u.tokens) if u.tokens and all(t in vocab.index for t in u.tokens)
                         else None for u in dv])
    return train, dev, vocab, {}
