"""Decoding CTC outputs: greedy (best path) and prefix beam search with optional bigram LM fusion.

Greedy decoding takes the most probable symbol at each frame, merges repeats and drops blanks
[ctc-decode:greedy]; it returns the labelling of the single most probable *path*, not the most
probable *labelling* (which sums over all paths that collapse to it). The prefix beam search
(Graves 2012, ch. 7.5; Hannun et al. 2014, "First-pass large vocabulary continuous speech recognition
using bi-directional recurrent DNNs", Algorithm 1) keeps, for each candidate prefix, the probability
of all paths that produce it and end in a blank or in a non-blank [ctc-decode:prefix-init]
[ctc-decode:prefix-blank] [ctc-decode:prefix-repeat] [ctc-decode:prefix-extend], and can fold in a
token bigram LM and an insertion bonus at each extension [ctc-decode:fusion]. With an unbounded beam
it is exact: it returns the most probable labelling. Equations: docs/equations/decoding.md.

All scores are natural logs; the input is normalised with a log-softmax first, so logits and
log-probabilities are both accepted.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import numpy as np

from .._validate import float_array, lengths_array, positive_int
from .lm import BigramLM

NEG_INF = -math.inf


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - (m + np.log(np.exp(x - m).sum(axis=-1, keepdims=True)))


def _log_add(a: float, b: float) -> float:
    """log(exp(a) + exp(b)), with -inf as log 0."""
    if a == NEG_INF:
        return b
    if b == NEG_INF:
        return a
    if a > b:
        return a + math.log1p(math.exp(b - a))
    return b + math.log1p(math.exp(a - b))


def _check(log_probs, lengths, blank):
    log_probs = float_array("log_probs", log_probs, ndim=3)
    B, T, V = log_probs.shape
    lengths = lengths_array("lengths", lengths, B, T)
    if isinstance(blank, bool) or not isinstance(blank, (int, np.integer)) or not 0 <= blank < V:
        raise ValueError(f"blank: expected an integer in [0, {V}), got {blank!r}")
    return log_probs, lengths, int(blank)


def ctc_greedy_decode(log_probs: np.ndarray, lengths: Optional[np.ndarray] = None, *,
                      blank: int = 0) -> list[list[int]]:
    """Best-path decoding: per-frame argmax, merge repeats, drop blanks [ctc-decode:greedy].

    Args:
        log_probs: ``(B, T, V)`` logits or log-probabilities (the argmax is the same).
        lengths: ``(B,)`` valid frames per utterance (``None``: all ``T``); padding is never read.
        blank: the blank index.

    Returns:
        ``B`` lists of token ids.
    """
    log_probs, lengths, blank = _check(log_probs, lengths, blank)
    out = []
    for b in range(log_probs.shape[0]):
        best = log_probs[b, : lengths[b]].argmax(axis=-1)               # (T_b,)
        keep = np.ones(best.shape, dtype=bool)
        keep[1:] = best[1:] != best[:-1]                                 # merge repeats
        out.append([int(t) for t in best[keep] if t != blank])           # drop blanks
    return out


class Hypothesis(NamedTuple):
    """A beam-search result: the token ids and their scores (natural logs)."""

    tokens: tuple
    score: float        # log P_ctc + lm_weight * log P_lm + insertion_bonus * len (what is ranked)
    ctc_log_prob: float  # log P_ctc(tokens | x): sum over all alignments (exact when nothing was pruned)


def ctc_prefix_beam_search_utterance(log_probs: np.ndarray, *, beam_size: int = 8, blank: int = 0,
                                     lm: Optional[BigramLM] = None, lm_weight: float = 0.0,
                                     insertion_bonus: float = 0.0,
                                     token_threshold: Optional[float] = None) -> list[Hypothesis]:
    """Prefix beam search over one utterance; returns every surviving hypothesis, best first.

    Args:
        log_probs: ``(T, V)`` logits or log-probabilities of ONE utterance (already cut to its length).
        beam_size: prefixes kept after each frame.
        blank: the blank index.
        lm: optional :class:`BigramLM` over the same token ids; ``lm_weight`` scales its log-probs
            and ``log P(</s> | last)`` is added at the end [ctc-decode:fusion].
        insertion_bonus: added per emitted token (counteracts the LM's bias towards short outputs).
        token_threshold: skip non-blank symbols whose frame log-probability is below this (e.g. -12):
            a large speed-up on peaky CTC outputs; ``None`` considers every symbol.

    Returns:
        The final beam as ``Hypothesis(tokens, score, ctc_log_prob)`` sorted by ``score`` (ties by tokens).
    """
    lp = float_array("log_probs", log_probs, ndim=2)
    T, V = lp.shape
    beam_size = positive_int("beam_size", beam_size)
    if isinstance(blank, bool) or not isinstance(blank, (int, np.integer)) or not 0 <= blank < V:
        raise ValueError(f"blank: expected an integer in [0, {V}), got {blank!r}")
    if lm is not None and lm.vocab_size != V:
        raise ValueError(f"lm: expected a model over {V} token ids, got vocab_size {lm.vocab_size}")
    lp = _log_softmax(lp)
    use_lm = lm is not None and lm_weight != 0.0
    # plain Python floats: indexing numpy scalars in the inner loop would dominate the run time
    rows = lp.tolist()
    lm_rows = (lm_weight * lm.log_probs).tolist() if use_lm else None    # [history][token], <s> row V

    # Each prefix carries (log p_b, log p_nb, fusion): paths ending in blank / in its last token, and
    # the accumulated lm_weight * log P_lm + bonus * len of the prefix (a constant per prefix).
    beams: dict[tuple, tuple[float, float, float]] = {(): (0.0, NEG_INF, 0.0)}    # [ctc-decode:prefix-init]
    for t in range(T):
        row = rows[t]
        symbols = [c for c in range(V) if c != blank and (token_threshold is None or row[c] >= token_threshold)]
        nxt: dict[tuple, list] = {}

        def slot(prefix, fusion):
            if prefix not in nxt:
                nxt[prefix] = [NEG_INF, NEG_INF, fusion]
            return nxt[prefix]

        for prefix, (p_b, p_nb, fus) in beams.items():
            p_tot = _log_add(p_b, p_nb)
            s = slot(prefix, fus)
            s[0] = _log_add(s[0], p_tot + row[blank])                      # [ctc-decode:prefix-blank]
            last = prefix[-1] if prefix else None
            if last is not None:
                s[1] = _log_add(s[1], p_nb + row[last])                    # [ctc-decode:prefix-repeat]
            for c in symbols:
                # a repeated symbol only extends the prefix through a blank in between
                src = p_b if c == last else p_tot
                if src == NEG_INF:
                    continue                                               # no path: no new prefix
                add = insertion_bonus
                if use_lm:
                    add += lm_rows[V if last is None else last][c]         # [ctc-decode:fusion]
                e = slot(prefix + (c,), fus + add)
                e[1] = _log_add(e[1], src + row[c])                        # [ctc-decode:prefix-extend]
        ranked = sorted(nxt.items(), key=lambda kv: (-(_log_add(kv[1][0], kv[1][1]) + kv[1][2]), kv[0]))
        beams = {k: (v[0], v[1], v[2]) for k, v in ranked[:beam_size]}

    hyps = []
    for prefix, (p_b, p_nb, fus) in beams.items():
        ctc = _log_add(p_b, p_nb)
        end = lm_weight * lm.score(prefix[-1] if prefix else None, None) if use_lm else 0.0
        hyps.append(Hypothesis(prefix, ctc + fus + end, ctc))
    hyps.sort(key=lambda h: (-h.score, h.tokens))
    return hyps


def ctc_prefix_beam_search(log_probs: np.ndarray, lengths: Optional[np.ndarray] = None, *,
                           beam_size: int = 8, blank: int = 0, lm: Optional[BigramLM] = None,
                           lm_weight: float = 0.0, insertion_bonus: float = 0.0,
                           token_threshold: Optional[float] = None) -> list[list[int]]:
    """Prefix beam search over a batch; the best hypothesis of each utterance as token ids.

    Args:
        log_probs: ``(B, T, V)`` logits or log-probabilities; frames at or past ``lengths[b]`` are ignored.
        lengths: ``(B,)`` valid frames (``None``: all ``T``).
        beam_size, blank, lm, lm_weight, insertion_bonus, token_threshold: see
            :func:`ctc_prefix_beam_search_utterance`.

    Returns:
        ``B`` lists of token ids.
    """
    log_probs, lengths, blank = _check(log_probs, lengths, blank)
    return [list(ctc_prefix_beam_search_utterance(
        log_probs[b, : lengths[b]], beam_size=beam_size, blank=blank, lm=lm, lm_weight=lm_weight,
        insertion_bonus=insertion_bonus, token_threshold=token_threshold)[0].tokens)
        for b in range(log_probs.shape[0])]
