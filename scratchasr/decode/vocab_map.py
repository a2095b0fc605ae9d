"""A language model over one vocabulary used by a recognizer over another: ids mapped by token string.

Every vocabulary of this project (scratchasr/data/corpus.py) has the reserved token ``<blank>`` at id 0,
which means the blank to a CTC or transducer recognizer and the sentence boundary (``<sos>`` as an input,
``<eos>`` as a prediction) to an attention decoder or a language model. A language model's id 0 is
therefore always its sentence boundary, whatever recognizer it is fused with: decoders feed it 0 first
and read its column 0 as ``log P(<eos> | y)``. The labels ``1 .. V-1`` are another matter: a recognizer's
vocabulary is built from its training transcripts, a language model's from its own text (``text_train``),
so the same token can have different ids (a character LM trained on more text knows more letters).

:class:`VocabularyMappedLM` makes such an LM speak the recognizer's ids: ``index[i]`` is the LM id of the
recognizer's token ``i`` (``index[0] = 0``), tokens fed to ``step`` go through ``index``, and the returned
log-probabilities are the LM's columns ``index`` (recognizer order, ``<eos>`` in column 0). Tokens the LM
knows and the recognizer does not are never proposed by the recognizer; their probability mass is left
out, not renormalised, so every fused or rescored score is exactly the LM's own log-probability of the
recognizer's tokens. A recognizer label the LM does not know is an error: the LM could not score a
hypothesis holding it. Nothing is mapped when the two vocabularies are equal
(``scratchasr.inference.load_lm`` returns the LM itself then).
"""

from __future__ import annotations

from typing import List, Sequence

import numpy as np

from .._validate import length_mask
from ..data.batch import Batch
from ..data.corpus import Vocabulary

__all__ = ["VocabularyMappedLM", "vocabulary_index"]


def vocabulary_index(lm_vocab: Vocabulary, vocab: Vocabulary, *, name: str = "lm") -> np.ndarray:
    """(len(vocab),) int64: the LM id of each recognizer token (0 -> 0); ValueError naming ``name`` when a
    recognizer label is missing from the LM's vocabulary."""
    missing = [t for t in vocab.tokens[1:] if t not in lm_vocab.index]
    if missing:
        raise ValueError(f"{name}: the language model's vocabulary ({len(lm_vocab)} tokens) lacks "
                         f"{len(missing)} of the recognizer's labels, e.g. {missing[:5]} (trained on other "
                         f"units or text?)")
    return np.array([0] + [lm_vocab.index[t] for t in vocab.tokens[1:]], dtype=np.int64)


class VocabularyMappedLM:
    """``lm`` (step interface, ``score``) re-indexed to the recognizer's ``vocab`` (module docstring)."""

    def __init__(self, lm, lm_vocab: Vocabulary, vocab: Vocabulary, *, name: str = "lm") -> None:
        self.lm, self.vocabulary = lm, vocab
        self.index = vocabulary_index(lm_vocab, vocab, name=name)
        self.vocab_size = len(vocab)
        self.IS_LM = True

    def init_state(self, batch_size: int):
        return self.lm.init_state(batch_size)

    def step(self, state, tokens):
        """tokens (B,) recognizer ids -> log_probs (B, len(vocab)) over recognizer ids, the LM's state."""
        tokens = np.asarray(tokens, dtype=np.int64)
        if tokens.size and (tokens.min() < 0 or tokens.max() >= self.vocab_size):
            raise ValueError(f"tokens: expected ids in [0, {self.vocab_size}), got min {tokens.min()} "
                             f"max {tokens.max()}")
        lp, state = self.lm.step(state, self.index[tokens])
        return np.asarray(lp)[:, self.index], state

    def _mapped(self, batch: Batch) -> Batch:
        y = np.asarray(batch.targets, dtype=np.int64)
        valid = length_mask(np.asarray(batch.target_lengths), y.shape[1])        # padding may hold anything
        if np.any(valid & ((y < 1) | (y >= self.vocab_size))):
            raise ValueError(f"batch.targets: expected ids in [1, {self.vocab_size}) within the lengths")
        return batch._replace(targets=np.where(valid, self.index[np.where(valid, y, 0)], 0))

    def forward_loss(self, batch: Batch):
        return self.lm.forward_loss(self._mapped(batch))

    def score(self, batch: Batch) -> np.ndarray:
        """(B,) ``log P_lm(y <eos>)`` of recognizer-id sequences [lm:chain]."""
        return self.lm.score(self._mapped(batch))

    def map_ids(self, sequences: Sequence[Sequence[int]]) -> List[List[int]]:
        return [[int(self.index[t]) for t in s] for s in sequences]
