"""A token bigram language model with add-k smoothing, for shallow fusion in CTC beam search.

Estimated from training transcripts (phone id sequences): with sentence-boundary symbols ``<s>`` and
``</s>``,

    P(c | p) = (n(p, c) + k) / (n(p) + k |W|)        [lm:bigram-addk]

where ``n(p, c)`` counts ``p`` followed by ``c``, ``n(p) = sum_c n(p, c)``, and ``W`` is the set of
predictable symbols (every token except the CTC blank, plus ``</s>``). ``k = 1`` is Laplace smoothing;
smaller ``k`` trusts the counts more. Reference: Chen & Goodman 1999, "An empirical study of smoothing
techniques for language modeling" (additive smoothing, section 2.1).

The step interface (the contract every language model implements, scratchasr/models/base.py):

    state = lm.init_state(batch_size)              # BigramState(last=(B,) zeros): nothing but <s> seen
    log_probs, state = lm.step(state, tokens)      # tokens (B,) int64, 0 = <s>; log_probs (B, V)

Id 0 is the sentence boundary: ``<s>`` as an input token, ``</s>`` as column 0 of ``log_probs``; it
is the CTC blank's id, which the bigram never predicts. A bigram's next-token distribution depends only
on the last token, so :meth:`BigramLM.transition_table` exposes the whole step function as one
``(V, V)`` table; the CTC beam-search kernel fuses that table directly [ctc-decode:fusion].
"""

from __future__ import annotations

import math
from typing import Iterable, NamedTuple, Optional, Sequence

import numpy as np

from .._validate import int_array, positive_int


class BigramState(NamedTuple):
    """The step-interface state of a bigram: the last token fed per row."""

    last: np.ndarray    # (B,) int64; 0 = <s> (nothing emitted yet)


class BigramLM:
    """Bigram log-probabilities over token ids ``0..V-1`` plus ``<s>`` (as a history) and ``</s>``.

    Attributes:
        log_probs: ``(V + 1, V + 1)`` float64; row ``p`` is the history (row ``V`` is ``<s>``), column
            ``c`` the next token (column ``V`` is ``</s>``). Rows and columns of excluded tokens (the
            blank) are ``-inf``.
        vocab_size: ``V``.
        bos, eos: the row index of ``<s>`` and the column index of ``</s>`` (both ``V``).
    """

    def __init__(self, log_probs: np.ndarray, *, k: float = 0.0, excluded: Sequence[int] = ()):
        log_probs = np.asarray(log_probs, dtype=np.float64)
        if log_probs.ndim != 2 or log_probs.shape[0] != log_probs.shape[1] or log_probs.shape[0] < 2:
            raise ValueError(f"log_probs: expected a square (V + 1, V + 1) array, "
                             f"got shape {log_probs.shape}")
        self.log_probs = log_probs
        self.vocab_size = log_probs.shape[0] - 1
        self.bos = self.eos = self.vocab_size
        self.k = float(k)
        self.excluded = tuple(int(e) for e in excluded)
        self._table: Optional[np.ndarray] = None

    @classmethod
    def estimate(cls, sequences: Iterable[Sequence[int]], vocab_size: int, *, k: float = 0.5,
                 exclude: Sequence[int] = (0,)) -> "BigramLM":
        """Count bigrams in ``sequences`` (lists of token ids) and smooth with add-``k`` [lm:bigram-addk].

        Args:
            sequences: training transcripts as token ids in ``[0, vocab_size)``.
            vocab_size: ``V``, the CTC output size (blank included).
            k: additive smoothing constant, ``> 0`` so unseen bigrams keep a non-zero probability.
            exclude: ids that are never predicted nor used as history (the CTC blank).
        """
        V = positive_int("vocab_size", vocab_size)
        if not (isinstance(k, (int, float)) and k > 0):
            raise ValueError(f"k: expected a positive number, got {k!r}")
        excl = sorted(set(int(e) for e in exclude))
        if any(not 0 <= e < V for e in excl):
            raise ValueError(f"exclude: ids must lie in [0, {V}), got {excl}")
        counts = np.zeros((V + 1, V + 1), dtype=np.float64)       # history x next, <s> row V, </s> col V
        for n, seq in enumerate(sequences):
            ids = [int(t) for t in seq]
            bad = [t for t in ids if not 0 <= t < V or t in excl]
            if bad:
                raise ValueError(f"sequences[{n}]: token ids must lie in [0, {V}) and not be excluded "
                                 f"{excl}, "
                                 f"got {bad[:5]}")
            hist = [V] + ids             # <s> y1 ... yn
            nxt = ids + [V]              # y1 ... yn </s>
            np.add.at(counts, (hist, nxt), 1.0)
        allowed = np.ones(V + 1, dtype=bool)
        allowed[excl] = False            # column V (</s>) stays allowed; row V is <s>
        W = int(allowed.sum())           # predictable symbols: tokens except excluded, plus </s>
        probs = (counts + k) / (counts.sum(axis=1, keepdims=True) + k * W)   # [lm:bigram-addk]
        with np.errstate(divide="ignore"):
            log_probs = np.where(allowed[None, :], np.log(probs), -np.inf)
        log_probs[excl, :] = -np.inf     # the blank is never a history
        return cls(log_probs, k=k, excluded=excl)

    def score(self, prev: Optional[int], token: Optional[int]) -> float:
        """``log P(token | prev)``; ``prev=None`` means ``<s>``, ``token=None`` means ``</s>``."""
        p = self.bos if prev is None else prev
        c = self.eos if token is None else token
        return float(self.log_probs[p, c])

    def transition_table(self) -> np.ndarray:
        """``(V, V)`` float64 step table ``[p, c] = log P(c | p)``; id 0: ``<s>`` (row), ``</s>`` (column).

        Row ``p`` is exactly what :meth:`step` returns after token ``p``. Needs token 0 excluded (never
        predicted: it is the CTC blank), since the step interface reserves id 0 for the sentence boundary.
        """
        if self._table is None:
            V = self.vocab_size
            if np.any(self.log_probs[:, 0] > -np.inf):
                raise ValueError("lm: token 0 is a predictable symbol of this bigram, but the step interface "
                                 "reserves id 0 for the sentence boundary (estimate with exclude=(0,))")
            table = self.log_probs[:V, :V].copy()        # histories and next tokens 1..V-1 keep their ids
            table[0, :] = self.log_probs[self.bos, :V]     # history 0 = <s>
            table[:, 0] = self.log_probs[:V, self.eos]     # next 0 = </s>
            table[0, 0] = self.log_probs[self.bos, self.eos]
            self._table = table
        return self._table

    def init_state(self, batch_size: int) -> BigramState:
        """The state before any token: ``BigramState(last=zeros(batch_size))`` (the step interface)."""
        B = positive_int("batch_size", batch_size, minimum=0)
        self.transition_table()                            # fail early if id 0 is a real token
        return BigramState(np.zeros(B, dtype=np.int64))

    def step(self, state: BigramState, tokens: np.ndarray) -> tuple[np.ndarray, BigramState]:
        """Feed ``tokens`` (B,) int64 (0 = ``<s>``); return ``log_probs (B, V)`` (column 0: ``</s>``), state.

        A bigram ignores everything before the token just fed, so the state only records it.
        """
        if not (isinstance(state, BigramState)):
            raise TypeError(f"state: expected a BigramState (from init_state), got {type(state).__name__}")
        B = state.last.shape[0]
        tokens = int_array("tokens", tokens, ndim=1, shape=(B,))
        V = self.vocab_size
        if tokens.size and (tokens.min() < 0 or tokens.max() >= V):
            raise ValueError(f"tokens: expected ids in [0, {V}), got min {tokens.min()} "
                             f"and max {tokens.max()}")
        return self.transition_table()[tokens], BigramState(tokens.copy())

    def sequence_log_prob(self, seq: Sequence[int]) -> float:
        """``log P(<s> seq </s>)``, the sum of its bigram log-probabilities."""
        hist = [self.bos] + list(seq)
        nxt = list(seq) + [self.eos]
        return float(sum(self.log_probs[p, c] for p, c in zip(hist, nxt)))

    def perplexity(self, sequences: Iterable[Sequence[int]]) -> float:
        """``exp(-sum log P / number of predicted symbols)`` (``</s>`` counted, as usual)."""
        total, n = 0.0, 0
        for seq in sequences:
            total += self.sequence_log_prob(seq)
            n += len(seq) + 1
        return math.exp(-total / max(n, 1))

    def to_dict(self) -> dict:
        """A JSON-serialisable description (for checkpoints)."""
        finite = np.where(np.isfinite(self.log_probs), self.log_probs, None)
        return {"type": "bigram", "k": self.k, "excluded": list(self.excluded), "log_probs": finite.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "BigramLM":
        lp = np.array([[-np.inf if v is None else v for v in row] for row in d["log_probs"]],
                      dtype=np.float64)
        return cls(lp, k=d.get("k", 0.0), excluded=d.get("excluded", ()))
