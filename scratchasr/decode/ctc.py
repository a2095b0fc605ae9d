"""Decoding CTC outputs: greedy (best path) and prefix beam search with optional LM shallow fusion.

Greedy decoding takes the most probable symbol at each frame, merges repeats and drops blanks
[ctc-decode:greedy]; it returns the labelling of the single most probable *path*, not the most
probable *labelling* (which sums over all paths that collapse to it). The prefix beam search
(Graves 2012, ch. 7.5; Hannun et al. 2014, "First-pass large vocabulary continuous speech recognition
using bi-directional recurrent DNNs", Algorithm 1) keeps, for each candidate prefix, the probability
of all paths that produce it and end in a blank or in a non-blank [ctc-decode:prefix-init]
[ctc-decode:prefix-blank] [ctc-decode:prefix-repeat] [ctc-decode:prefix-extend], and can fold in a
language model and an insertion bonus at each extension [ctc-decode:fusion]. With an unbounded beam
it is exact: it returns the most probable labelling. Equations: docs/equations/decoding.md.

Two implementations with the same results (ids exactly, scores to 1e-10; in practice bit for bit):

* ``_prefix_beam_search_numpy`` here, the readable reference: a dict of prefixes per frame, and any
  language model through the step interface (``lm.init_state(B)``, ``lm.step(state, tokens)``, id 0
  = sentence boundary; scratchasr/models/base.py).
* ``kernels/ctc_decode.py`` (Numba), ~1000x faster; it fuses an LM only through a bigram step table
  (``lm.transition_table()``, as :class:`~scratchasr.decode.lm.BigramLM` has). ``backend=None`` uses
  the kernel whenever it can and the reference for any other LM.

Both rank with one strict total order [ctc-decode:ties]: higher score first, equal scores by token
sequence (lexicographic, a prefix before its extensions), so ties break the same way in both.

All scores are natural logs; the input is normalised with a log-softmax first, so logits and
log-probabilities are both accepted.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Optional

import numpy as np

from .._backend import resolve_backend
from .._state import gather_state
from .._validate import float_array, length_mask, lengths_array, positive_int
from .lm_window import with_context_window

NEG_INF = -math.inf


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - (m + np.log(np.exp(x - m).sum(axis=-1, keepdims=True)))


def _log_add(a: float, b: float) -> float:
    """log(exp(a) + exp(b)), with -inf as log 0 (symmetric in a, b, bit for bit)."""
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
        # BEGIN ASSIGNMENT A3 points=1
        best = log_probs[b, : lengths[b]].argmax(axis=-1)               # (T_b,) [ctc-decode:greedy]
        keep = np.ones(best.shape, dtype=bool)
        keep[1:] = best[1:] != best[:-1]                                 # merge repeats
        out.append([int(t) for t in best[keep] if t != blank])           # drop blanks
        # END ASSIGNMENT
    return out


class Hypothesis(NamedTuple):
    """A beam-search result: the token ids and their scores (natural logs)."""

    tokens: tuple
    score: float        # log P_ctc + lm_weight * log P_lm + insertion_bonus * len (what is ranked)
    ctc_log_prob: float  # log P_ctc(tokens | x): sum over all alignments (exact when nothing was pruned)
    lm_log_prob: float = 0.0  # log P_lm(tokens </s>), unweighted (0.0 without fusion): for rescoring


# ----------------------------------------------------------------------------- LM step-interface plumbing


def _stack_states(states: list) -> Any:
    """Concatenate per-hypothesis states (leading dim 1 each) into one batched state."""
    first = states[0]
    if isinstance(first, np.ndarray):
        return np.concatenate(states, axis=0)
    if isinstance(first, tuple) and hasattr(first, "_fields"):
        return type(first)(*(_stack_states([s[i] for s in states]) for i in range(len(first))))
    if isinstance(first, (tuple, list)):
        return type(first)(_stack_states([s[i] for s in states]) for i in range(len(first)))
    if isinstance(first, dict):
        return {k: _stack_states([s[k] for s in states]) for k in first}
    return first


def _lm_advance(lm, states: list, tokens: list, V: int) -> list:
    """Feed ``tokens[i]`` to the LM in state ``states[i]`` (one batched ``lm.step`` call).

    Returns per hypothesis ``(state with leading dim 1, next-token log-probs as a list of V floats)``.
    """
    log_probs, new_state = lm.step(_stack_states(states), np.asarray(tokens, dtype=np.int64))
    log_probs = np.asarray(log_probs, dtype=np.float64)
    if log_probs.shape != (len(tokens), V):
        raise ValueError(f"lm: step returned log_probs of shape {log_probs.shape}, expected "
                         f"({len(tokens)}, {V}) (one column per CTC output id, column 0 = </s>)")
    return [(gather_state(new_state, slice(i, i + 1)), log_probs[i].tolist()) for i in range(len(tokens))]


class _Prefix(NamedTuple):
    p_b: float      # log-prob of the paths that produce the prefix and end in a blank
    p_nb: float     # ... and end in its last symbol
    fusion: float   # lm_weight * log P_lm(prefix) + insertion_bonus * len(prefix)  [ctc-decode:fusion]
    lm: float       # log P_lm(prefix), unweighted


# ----------------------------------------------------------------------------- the readable reference


def _prefix_beam_search_numpy(lp: np.ndarray, *, beam_size: int, blank: int, lm, lm_weight: float,
                              insertion_bonus: float, token_threshold: Optional[float]) -> list[Hypothesis]:
    """Prefix beam search over one utterance ``lp (T, V)`` float64 log-softmax; the final beam, best first.

    Twin of ``kernels/ctc_decode.py``. ``lm`` (used when ``lm_weight != 0``) is any step-interface LM.
    """
    T, V = lp.shape
    use_lm = lm is not None and lm_weight != 0.0
    rows = lp.tolist()          # plain floats: numpy scalars in the inner loop would dominate the run time
    beams: dict[tuple, _Prefix] = {(): _Prefix(0.0, NEG_INF, 0.0, 0.0)}    # [ctc-decode:prefix-init]
    # per prefix in the beam: its LM state (leading dim 1) and next-token log-probs (column 0 = </s>)
    lm_ctx = {(): _lm_advance(lm, [lm.init_state(1)], [0], V)[0]} if use_lm else {}

    def ranking(item):          # the strict order [ctc-decode:ties]: score down, then tokens up
        prefix, (p_b, p_nb, fusion, _) = item
        return -(_log_add(p_b, p_nb) + fusion), prefix

    for t in range(T):
        row = rows[t]
        symbols = [c for c in range(V)
                   if c != blank and (token_threshold is None or row[c] >= token_threshold)]
        nxt: dict[tuple, list] = {}
        # BEGIN ASSIGNMENT A3 points=4
        for prefix, h in beams.items():          # each prefix survives a blank or a repeat of its last symbol
            p_b = _log_add(h.p_b, h.p_nb) + row[blank]                           # [ctc-decode:prefix-blank]
            p_nb = h.p_nb + row[prefix[-1]] if prefix else NEG_INF               # [ctc-decode:prefix-repeat]
            nxt[prefix] = [p_b, p_nb, h.fusion, h.lm]
        for prefix, h in beams.items():          # ... and is extended by every non-blank symbol
            p_tot = _log_add(h.p_b, h.p_nb)
            last = prefix[-1] if prefix else None
            for c in symbols:
                src = h.p_b if c == last else p_tot   # a repeated symbol needs a blank in between
                if src == NEG_INF:
                    continue                                                     # no path: no new prefix
                new = prefix + (c,)
                if new in nxt:                   # already in the beam: add the mass, keep its fusion term
                    nxt[new][1] = _log_add(nxt[new][1], src + row[c])            # [ctc-decode:prefix-extend]
                    continue
                fusion, lm_lp = h.fusion + insertion_bonus, h.lm
                if use_lm:
                    lm_c = lm_ctx[prefix][1][c]
                    fusion = h.fusion + (insertion_bonus + lm_weight * lm_c)            # [ctc-decode:fusion]
                    lm_lp = h.lm + lm_c
                nxt[new] = [NEG_INF, src + row[c], fusion, lm_lp]                # [ctc-decode:prefix-extend]
        # END ASSIGNMENT
        ranked = sorted(((k, _Prefix(*v)) for k, v in nxt.items() if _log_add(v[0], v[1]) + v[2] > NEG_INF),
                        key=ranking)[:beam_size]              # impossible prefixes never enter the beam
        if use_lm:                               # new prefixes feed their last token to the LM, in one batch
            new = [k for k, _ in ranked if k not in lm_ctx]
            if new:
                fed = _lm_advance(lm, [lm_ctx[k[:-1]][0] for k in new], [k[-1] for k in new], V)
                lm_ctx.update(zip(new, fed))
            lm_ctx = {k: lm_ctx[k] for k, _ in ranked}
        beams = dict(ranked)

    hyps = []
    for prefix, h in beams.items():
        ctc = _log_add(h.p_b, h.p_nb)
        end, lm_lp = 0.0, h.lm
        if use_lm:
            eos = lm_ctx[prefix][1][0]
            end, lm_lp = lm_weight * eos, h.lm + eos                             # [ctc-decode:fusion]
        if ctc + h.fusion + end > NEG_INF:                 # impossible once </s> is scored: dropped
            hyps.append(Hypothesis(prefix, ctc + h.fusion + end, ctc, lm_lp))
    hyps.sort(key=lambda h: (-h.score, h.tokens))                                # [ctc-decode:ties]
    return hyps


# ----------------------------------------------------------------------------- the public functions


def _prepare(log_probs: np.ndarray, lengths: np.ndarray, *, beam_size, blank, lm, lm_weight,
             insertion_bonus, token_threshold, nbest, backend):
    """Validate everything, log-softmax the valid frames, and resolve the backend."""
    B, T, V = log_probs.shape
    beam_size = positive_int("beam_size", beam_size)
    if nbest is not None:
        nbest = positive_int("nbest", nbest)
    for name, value in (("lm_weight", lm_weight), ("insertion_bonus", insertion_bonus)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
                or not math.isfinite(value):
            raise ValueError(f"{name}: expected a finite number, got {value!r}")
    if token_threshold is not None and (isinstance(token_threshold, bool) or not isinstance(
            token_threshold, (int, float, np.floating, np.integer)) or math.isnan(token_threshold)):
        raise ValueError(f"token_threshold: expected None or a number, got {token_threshold!r}")
    resolve_backend(backend)  # validated now; resolved below, once we know whether the kernel can fuse the LM
    use_lm = lm is not None and float(lm_weight) != 0.0
    table = None
    if use_lm:
        if blank != 0:
            raise ValueError(f"blank: LM fusion needs blank=0 (id 0 is the LM's sentence boundary), "
                             f"got {blank}")
        if not (hasattr(lm, "init_state") and hasattr(lm, "step")):
            raise TypeError(f"lm: expected a language model with init_state(batch_size) and "
                            f"step(state, tokens), got {type(lm).__name__}")
        if getattr(lm, "vocab_size", V) != V:
            raise ValueError(f"lm: expected a model over {V} token ids, got vocab_size {lm.vocab_size}")
        if hasattr(lm, "transition_table"):
            table = np.asarray(lm.transition_table(), dtype=np.float64)
            if table.shape != (V, V):
                raise ValueError(f"lm: expected a ({V}, {V}) transition table, got shape {table.shape}")
    if backend == "numba" and use_lm and table is None:
        raise ValueError(f"backend: the numba kernel fuses only bigram-table LMs (with transition_table()); "
                         f"{type(lm).__name__} needs backend=None or 'numpy'")
    resolved = resolve_backend(backend, has_kernel=not use_lm or table is not None)
    valid = length_mask(lengths, T)                                       # (B, T)
    x = np.where(valid[:, :, None], log_probs, 0.0)                      # padding is never read: zero it
    with np.errstate(invalid="ignore"):                                   # reported just below
        lp = _log_softmax(x)
    if np.isnan(lp).any():
        b, t = np.argwhere(np.isnan(lp).any(axis=-1))[0]
        raise ValueError(f"log_probs: expected finite values or -inf (at least one finite per frame, no NaN, "
                         f"no +inf) within lengths, frame [{b}, {t}] breaks this")
    lm = with_context_window(lm) if use_lm else None  # gpt_lm: a window past its positions [lm:window]
    opts = dict(beam_size=beam_size, blank=blank, lm=lm, lm_weight=float(lm_weight),
                insertion_bonus=float(insertion_bonus), token_threshold=token_threshold)
    return lp, opts, nbest, table, resolved


def _search_numba(lp: np.ndarray, lengths: np.ndarray, nbest: int, table: Optional[np.ndarray], *, beam_size,
                  blank, lm, lm_weight, insertion_bonus, token_threshold) -> list[list[Hypothesis]]:
    from ..kernels.ctc_decode import ctc_prefix_beam_search_kernel

    B, T, V = lp.shape
    # the beam never holds more prefixes than exist (1 + (V-1) + ... + (V-1)^T): cap the kernel's arrays
    reachable, n_len = 1, 1
    for _ in range(T):
        n_len *= V - 1
        reachable += n_len
        if reachable >= beam_size:
            break
    beam_size = min(beam_size, reachable)
    N = min(nbest, beam_size)
    use_lm = lm is not None
    raw = table if use_lm else np.zeros((1, 1))
    scaled = lm_weight * raw                                               # same product as the reference's
    out_tokens = np.zeros((B, N, T), dtype=np.int64)
    out_len = np.zeros((B, N), dtype=np.int64)
    out_score, out_ctc, out_lm = (np.zeros((B, N)) for _ in range(3))
    out_count = np.zeros(B, dtype=np.int64)
    thr = -np.inf if token_threshold is None else float(token_threshold)
    ctc_prefix_beam_search_kernel(np.ascontiguousarray(lp), lengths.astype(np.int64), beam_size, blank,
                                  use_lm, np.ascontiguousarray(scaled), np.ascontiguousarray(raw),
                                  insertion_bonus, thr,
                                  out_tokens, out_len, out_score, out_ctc, out_lm, out_count)
    return [[Hypothesis(tuple(int(v) for v in out_tokens[b, k, : out_len[b, k]]), float(out_score[b, k]),
                        float(out_ctc[b, k]), float(out_lm[b, k])) for k in range(out_count[b])]
            for b in range(B)]


def _search(log_probs, lengths, nbest_default, *, beam_size, blank, lm, lm_weight, insertion_bonus,
            token_threshold, nbest, backend) -> tuple[list[list[Hypothesis]], Optional[int]]:
    lp, opts, nbest, table, resolved = _prepare(
        log_probs, lengths, beam_size=beam_size, blank=blank, lm=lm, lm_weight=lm_weight,
        insertion_bonus=insertion_bonus, token_threshold=token_threshold, nbest=nbest, backend=backend)
    keep = nbest if nbest is not None else nbest_default(opts["beam_size"])
    if resolved == "numba":
        return _search_numba(lp, lengths, keep, table, **opts), nbest
    return [_prefix_beam_search_numpy(lp[b, : lengths[b]], **opts)[:keep] for b in range(lp.shape[0])], nbest


def ctc_prefix_beam_search_utterance(log_probs: np.ndarray, *, beam_size: int = 8, blank: int = 0,
                                     lm=None, lm_weight: float = 0.0, insertion_bonus: float = 0.0,
                                     token_threshold: Optional[float] = None, nbest: Optional[int] = None,
                                     backend: Optional[str] = None) -> list[Hypothesis]:
    """Prefix beam search over one utterance; returns the surviving hypotheses, best first.

    Args:
        log_probs: ``(T, V)`` logits or log-probabilities of ONE utterance (already cut to its length).
        beam_size: prefixes kept after each frame.
        blank: the blank index.
        lm: optional language model over the same ids with the step interface (``init_state``/``step``,
            id 0 = sentence boundary, so fusion needs ``blank=0``), e.g. :class:`BigramLM`; each extension
            adds ``lm_weight * log P_lm(c | prefix)`` and the end ``lm_weight * log P_lm(</s> | prefix)``
            [ctc-decode:fusion].
        insertion_bonus: added per emitted token (counteracts the LM's bias towards short outputs).
        token_threshold: skip non-blank symbols whose frame log-probability is below this (e.g. -12):
            a large speed-up on peaky CTC outputs; ``None`` considers every symbol.
        nbest: return at most this many hypotheses (``None``: the whole final beam, up to ``beam_size``).
        backend: ``None`` (the Numba kernel unless ``lm`` is a step-interface LM without a bigram
            ``transition_table()``, which runs in the reference), ``"numpy"`` (the reference) or ``"numba"``.

    Returns:
        ``Hypothesis(tokens, score, ctc_log_prob, lm_log_prob)`` sorted by ``score`` (ties by tokens).
        Impossible prefixes (score ``-inf``: probability 0 under the acoustic or the language model) never
        enter the beam, so the list is shorter than ``beam_size`` when fewer labellings are possible, and
        empty when none is (e.g. an LM that gives ``</s>`` probability 0 everywhere).
    """
    lp = float_array("log_probs", log_probs, ndim=2)
    hyps, _ = _search(lp[None], np.array([lp.shape[0]]), lambda k: k, beam_size=beam_size,
                      blank=_check(lp[None], None, blank)[2], lm=lm, lm_weight=lm_weight,
                      insertion_bonus=insertion_bonus, token_threshold=token_threshold, nbest=nbest,
                      backend=backend)
    return hyps[0]


def ctc_prefix_beam_search(log_probs: np.ndarray, lengths: Optional[np.ndarray] = None, *,
                           beam_size: int = 8, blank: int = 0, lm=None, lm_weight: float = 0.0,
                           insertion_bonus: float = 0.0, token_threshold: Optional[float] = None,
                           nbest: Optional[int] = None, backend: Optional[str] = None):
    """Prefix beam search over a batch.

    Args:
        log_probs: ``(B, T, V)`` logits or log-probabilities; frames at or past ``lengths[b]`` are ignored.
        lengths: ``(B,)`` valid frames (``None``: all ``T``).
        beam_size, blank, lm, lm_weight, insertion_bonus, token_threshold, backend: see
            :func:`ctc_prefix_beam_search_utterance`.
        nbest: ``None`` returns the best token ids per utterance; an integer ``N`` returns, per utterance,
            the ``N`` best :class:`Hypothesis` (at most ``beam_size``), best first (for rescoring).

    Returns:
        ``B`` lists of token ids (``[]`` also when no labelling is possible, see
        :func:`ctc_prefix_beam_search_utterance`), or with ``nbest``, ``B`` lists of hypotheses.
    """
    log_probs, lengths, blank = _check(log_probs, lengths, blank)
    hyps, nbest = _search(log_probs, lengths, lambda k: 1, beam_size=beam_size, blank=blank, lm=lm,
                          lm_weight=lm_weight, insertion_bonus=insertion_bonus,
                          token_threshold=token_threshold, nbest=nbest, backend=backend)
    if nbest is None:
        return [list(h[0].tokens) if h else [] for h in hyps]
    return hyps
