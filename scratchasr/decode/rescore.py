"""N-best rescoring with a language model [lm:rescore] (the conventional two-pass pipeline).

    nbest = ctc_prefix_beam_search(log_probs, lengths, beam_size=16, nbest=8)    # first pass, no LM
    best = rescore_nbest(nbest, lm, lm_weight=0.5)                              # B lists, best first

Each hypothesis keeps its first-pass (acoustic) score ``a`` and gets ``l = log P_lm(y <eos>)`` from the
LM; hypotheses are re-ranked by ``a + lm_weight * l + insertion_bonus * len(y)``. The first pass is any
beam search returning hypotheses with their scores, run without an LM (:func:`acoustic_score`): the CTC
prefix search (``a = ctc_log_prob``, ``log P(y | x)`` summed over alignments), the transducer's searches
(``a = log_am``) or the attention decoders' (``a`` = the search's own score ``s(y)``, i.e.
``(1 - ctc_weight) log P_att(y <eos> | x) + ctc_weight log P_ctc(y | x)`` plus its length terms).
The LM is any object with ``score(batch) -> (B,)`` (the registered language models) or with the step
interface only (e.g. :class:`~scratchasr.decode.lm.BigramLM`), whose sentence log-probability is
accumulated step by step.
"""

from __future__ import annotations

import math
from typing import List, Sequence

import numpy as np

from ..data.batch import make_batch
from .attention import AttentionHypothesis
from .ctc import Hypothesis
from .lm_window import ContextWindowLM, with_context_window
from .transducer import Hypothesis as TransducerHypothesis

__all__ = ["rescore_nbest", "sentence_log_probs", "acoustic_score", "decode_nbest_rescored"]

_HYPOTHESES = (Hypothesis, TransducerHypothesis, AttentionHypothesis)


def acoustic_score(h) -> float:
    """The first pass's score of a hypothesis, without any LM part (see the module docstring)."""
    if isinstance(h, Hypothesis):
        return float(h.ctc_log_prob)
    if isinstance(h, TransducerHypothesis):
        return float(h.log_am)
    if isinstance(h, AttentionHypothesis):
        return float(h.score)
    raise TypeError(f"nbest: expected lists of CTC, transducer or attention hypotheses "
                    f"(scratchasr.decode), got {type(h).__name__}")


def sentence_log_probs(lm, sequences: Sequence[Sequence[int]]) -> np.ndarray:
    """(N,) float64 ``log P_lm(y <eos>)`` of each id sequence [lm:chain]: ``lm.score`` when it has one,
    else summed through the step interface [lm:step]."""
    seqs = [[int(t) for t in s] for s in sequences]
    if not seqs:
        return np.zeros(0)
    lm = with_context_window(lm)  # gpt_lm: a sentence longer than its positions [lm:window]
    if hasattr(lm, "score") and (hasattr(lm, "forward_loss") or isinstance(lm, ContextWindowLM)):
        return np.asarray(lm.score(make_batch(None, seqs)), dtype=np.float64)
    if not (hasattr(lm, "init_state") and hasattr(lm, "step")):
        raise TypeError(f"lm: expected a language model with score(batch) or init_state/step, "
                        f"got {type(lm).__name__}")
    N, S = len(seqs), max(len(s) for s in seqs)
    state = lm.init_state(N)
    total = np.zeros(N)
    prev = np.zeros(N, np.int64)                                   # <sos>
    done = np.zeros(N, bool)
    for s in range(S + 1):
        lp, state = lm.step(state, prev)
        lp = np.asarray(lp, np.float64)
        nxt = np.array([q[s] if s < len(q) else 0 for q in seqs], np.int64)   # 0 = <eos> after the last
        total += np.where(done, 0.0, lp[np.arange(N), nxt])
        done |= np.array([s >= len(q) for q in seqs])
        prev = nxt
    return total


def rescore_nbest(nbest: Sequence[Sequence[Hypothesis]], lm, *, lm_weight: float,
                  insertion_bonus: float = 0.0) -> List[List[Hypothesis]]:
    """Re-rank each utterance's hypotheses by acoustic + ``lm_weight`` x LM + bonus x length [lm:rescore].

    Returns the same hypotheses, of the same types, with ``score`` = the combined score and the LM field
    (``lm_log_prob``; the transducer's ``log_lm``) = the LM's ``log P(y <eos>)``, best first, ties broken
    by token sequence."""
    for name, value in (("lm_weight", lm_weight), ("insertion_bonus", insertion_bonus)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
                or not math.isfinite(value):
            raise ValueError(f"{name}: expected a finite number, got {value!r}")
    flat = [h for hyps in nbest for h in hyps]
    acoustic = [acoustic_score(h) for h in flat]
    lm_lp = sentence_log_probs(lm, [h.tokens for h in flat]) if flat else np.zeros(0)
    out, k = [], 0
    for hyps in nbest:
        ranked = []
        for h in hyps:
            combined = acoustic[k] + lm_weight * lm_lp[k] + insertion_bonus * len(h.tokens)  # [lm:rescore]
            lm_field = "log_lm" if isinstance(h, TransducerHypothesis) else "lm_log_prob"
            ranked.append(h._replace(tokens=tuple(h.tokens), score=float(combined),
                                     **{lm_field: float(lm_lp[k])}))
            k += 1
        ranked.sort(key=lambda h: (-h.score, h.tokens))
        out.append(ranked)
    return out


def decode_nbest_rescored(model, feats, lm, *, beam: int, nbest: int, lm_weight: float,
                          insertion_bonus: float = 0.0, batch_size: int = 16) -> List[List[int]]:
    """Two-pass decoding of normalised ``(T, D)`` feature arrays: ``model``'s beam search keeps ``nbest``
    hypotheses with their acoustic scores (``model.decode(..., nbest=N)``: the CTC models, the transducer
    and the attention models), ``lm`` rescores them [lm:rescore]; returns the best ids per utterance."""
    from ..data.batch import bucket_batches
    if isinstance(nbest, bool) or not isinstance(nbest, (int, np.integer)) or nbest < 1:
        raise ValueError(f"nbest: expected a positive integer, got {nbest!r}")
    if isinstance(beam, bool) or not isinstance(beam, (int, np.integer)) or beam < nbest:
        raise ValueError(f"beam: expected an integer >= nbest = {nbest} (the beam holds the n-best), "
                         f"got {beam!r}")
    out: List[List[int]] = [[] for _ in feats]
    for idx in bucket_batches([f.shape[0] for f in feats], batch_size, None):
        b = make_batch([feats[i] for i in idx], [[] for _ in idx])
        try:
            lists = model.decode(b, method="beam", beam_size=int(beam), nbest=int(nbest))
        except TypeError:
            raise ValueError(f"nbest: model {getattr(model, 'name', type(model).__name__)!r} returns no "
                             f"n-best lists (its decode takes no nbest option)") from None
        if not all(isinstance(h, _HYPOTHESES) for hyps in lists for h in hyps):
            raise ValueError(f"nbest: model {getattr(model, 'name', '?')!r} did not return Hypothesis lists")
        for i, ranked in zip(idx, rescore_nbest(lists, lm, lm_weight=lm_weight,
                                                insertion_bonus=insertion_bonus)):
            out[i] = list(ranked[0].tokens) if ranked else []
    return out
