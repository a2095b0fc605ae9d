"""Corpora as the trainer and the scorer see them: utterances with a wav path and a token sequence.

Two on-disk layouts are read:

* TIMIT's layout (real TIMIT, or ``scratchasr synth-timit``): ``split`` is ``train``, ``dev``,
  ``core_test`` or ``test`` (:func:`scratchasr.data.timit.read_corpus`).
* Kaldi data directories (``wav.scp`` + ``text``): ``data_dir`` itself, or ``data_dir/<split>``.

``units`` chooses the tokens: ``"phones"`` (TIMIT's 61 phones from ``.PHN``; for a Kaldi dir, the
``text`` as written), ``"words"`` (``.WRD`` words or the Kaldi ``text`` split on spaces, normalised by
:func:`normalise_text`) or ``"chars"`` (the normalised text letter by letter, ``|`` between words).

The vocabulary maps tokens to ids ``1 .. V-1``; id 0 is the blank / sentence boundary of every model.
Scoring folds the 61 TIMIT phones to 39 (Lee & Hon) when the vocabulary is TIMIT's; other tokens are
scored as they are.

Text normalisation (words and chars, :func:`normalise_text`): lower case; every character other than
``a-z``, the apostrophe and space becomes a space (so "Mr. Smith's dog-house" -> ``mr smith's dog house``);
apostrophes at the start or end of a word are stripped; runs of spaces become one. Characters come
from the prompt of TIMIT's ``.TXT`` (the reader drops its two leading sample numbers) or the Kaldi
``text``; words from ``.WRD`` (else the prompt), normalised the same way. A character model's tokens
are the letters and apostrophes of that text with ``|`` (:data:`WORD_BOUNDARY`) for each space.

Scoring text (:func:`text_scoring_tokens`), identical for references and hypotheses: the tokens are
joined into text (``|`` -> space), the text is normalised again (a hypothesis may start, end or repeat
``|``: that is not an error) and split two ways: words for the WER, and characters without the spaces
for the CER, as NIST sclite's ``-c`` character mode counts them (it splits words into characters and
drops the word boundaries). :func:`tokens_to_text` gives the text that ``scratchasr transcribe`` prints
and ``decode --out`` writes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Sequence, Tuple

import numpy as np

from .phones import PHONES_61, fold_phones

__all__ = ["CorpusUtterance", "Vocabulary", "read_split", "is_kaldi_dir", "normalise_text",
           "build_vocabulary", "scoring_tokens", "spread_subset", "UNITS", "WORD_BOUNDARY", "tokens_to_text",
           "text_scoring_tokens"]

UNITS = ("phones", "words", "chars")
WORD_BOUNDARY = "|"
RESERVED = "<blank>"  # id 0: CTC/transducer blank, attention/LM sentence boundary


@dataclass
class CorpusUtterance:
    id: str
    speaker: str
    wav_path: str
    tokens: List[str] = field(default_factory=list)
    text: str = ""


def normalise_text(text: str) -> str:
    """Lower case; letters, apostrophes and single spaces only (punctuation becomes a space)."""
    t = re.sub(r"[^a-z' ]+", " ", text.lower())
    return " ".join(w.strip("'") for w in t.split() if w.strip("'"))


def _tokens_from_text(text: str, units: str) -> List[str]:
    if units == "phones":
        return text.split()
    norm = normalise_text(text)
    if units == "words":
        return norm.split()
    return list(norm.replace(" ", WORD_BOUNDARY))


def is_kaldi_dir(path) -> bool:
    return (Path(path) / "wav.scp").is_file()


def read_split(data_dir, split: str, units: str = "phones") -> List[CorpusUtterance]:
    """The utterances of one split with their tokens (see the module docstring for layouts and units)."""
    if units not in UNITS:
        raise ValueError(f"units: expected one of {list(UNITS)}, got {units!r}")
    root = Path(data_dir)
    if not root.exists():
        raise FileNotFoundError(f"data_dir: no such directory: {root}")
    kaldi = root if is_kaldi_dir(root) else (root / split if split and is_kaldi_dir(root / split) else None)
    if kaldi is not None:
        from .kaldi_dir import read_data_dir
        return [CorpusUtterance(u.id, u.speaker, u.wav_path, _tokens_from_text(u.text, units), u.text)
                for u in read_data_dir(kaldi)]
    from .timit import read_corpus
    out = []
    for u in read_corpus(str(root), split):
        if units == "phones":
            toks = u.phone_labels
        elif units == "words":
            toks = normalise_text(" ".join(w for _, _, w in u.words) if u.words else u.text).split()
        else:
            toks = _tokens_from_text(u.text, "chars")
        out.append(CorpusUtterance(u.id, u.speaker, u.wav_path, toks, u.text))
    return out


class Vocabulary:
    """Tokens by id; id 0 is reserved (``<blank>``: blank or sentence boundary)."""

    def __init__(self, tokens: Sequence[str]) -> None:
        tokens = list(tokens)
        if not tokens or tokens[0] != RESERVED:
            raise ValueError(f"tokens: expected {RESERVED!r} at id 0, got {tokens[:1]}")
        if len(set(tokens)) != len(tokens):
            raise ValueError("tokens: duplicate tokens in the vocabulary")
        self.tokens = tokens
        self.index: Dict[str, int] = {t: i for i, t in enumerate(tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokens: Sequence[str], *, where: str = "tokens") -> np.ndarray:
        try:
            ids = np.array([self.index[t] for t in tokens], dtype=np.int64)
        except KeyError as e:
            raise ValueError(f"{where}: token {e.args[0]!r} is not in the vocabulary") from None
        if np.any(ids == 0):
            raise ValueError(f"{where}: the reserved token {RESERVED!r} cannot be a label")
        return ids

    def decode(self, ids: Iterable[int]) -> List[str]:
        return [self.tokens[int(i)] for i in ids]

    @property
    def is_timit61(self) -> bool:
        return self.tokens[1:] == list(PHONES_61)


def build_vocabulary(units: str, utts: Sequence[CorpusUtterance]) -> Vocabulary:
    """TIMIT's 61 phones when every token is one of them; otherwise the sorted tokens of ``utts``."""
    seen = sorted({t for u in utts for t in u.tokens})
    if units == "phones" and set(seen) <= set(PHONES_61):
        return Vocabulary([RESERVED] + list(PHONES_61))
    return Vocabulary([RESERVED] + seen)


def spread_subset(items: Sequence, n: int) -> list:
    """``n`` items evenly spaced over the list (all when ``n`` is 0 or too large), order kept.

    Corpora are sorted by speaker (and the synthetic one by voice), so the first ``n`` utterances
    would hold only a few speakers or voices; ``max_train_utts``/``max_dev_utts`` use this instead.
    """
    if not n or n >= len(items):
        return list(items)
    idx = np.linspace(0, len(items) - 1, n).round().astype(int)
    return [items[i] for i in idx]


def scoring_tokens(tokens: Sequence[str], scoring: str) -> List[str]:
    """Tokens as scored: ``"timit39"`` folds 61 -> 39 phones (``q`` deleted); ``"tokens"`` keeps them."""
    if scoring == "timit39":
        return fold_phones(list(tokens))
    if scoring == "tokens":
        return list(tokens)
    raise ValueError(f"scoring: expected 'timit39' or 'tokens', got {scoring!r}")


def tokens_to_text(tokens: Sequence[str], units: str) -> str:
    """What a model's tokens say: characters joined (``|`` -> space, then normalised), words and phones
    joined by spaces."""
    if units not in UNITS:
        raise ValueError(f"units: expected one of {list(UNITS)}, got {units!r}")
    if units == "chars":
        return normalise_text("".join(tokens).replace(WORD_BOUNDARY, " "))
    return " ".join(tokens)


def text_scoring_tokens(tokens: Sequence[str], units: str) -> Tuple[List[str], List[str]]:
    """``(characters, words)`` of a word or character token sequence as scored: CER over the characters
    (no word boundary: sclite ``-c``), WER over the words; the same function for references and
    hypotheses (module docstring)."""
    if units not in ("words", "chars"):
        raise ValueError(f"units: expected 'words' or 'chars', got {units!r}")
    text = normalise_text(tokens_to_text(tokens, units) if units == "chars" else " ".join(tokens))
    return list(text.replace(" ", "")), text.split()
