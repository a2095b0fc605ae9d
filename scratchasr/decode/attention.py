"""Label-synchronous decoding of attention encoder-decoders: greedy, beam search, LM shallow fusion and
joint CTC/attention scoring (docs/equations/attention_models.md, "Decoding").

References: Sutskever, Vinyals & Le 2014 (left-to-right beam search of an encoder-decoder); Chorowski &
Jaitly 2017, "Towards better decoding and language model integration in sequence to sequence models"
(length normalisation vs a length reward, shallow fusion); Watanabe, Hori, Kim, Hershey & Hayashi 2017,
"Hybrid CTC/attention architecture for end-to-end speech recognition" (IEEE JSTSP), section III-B and
Algorithm 2 (the CTC prefix score added to each partial hypothesis).

The decoder drives a model through its step interface only (scratchasr/models/base.py):

    state = model.init_state(B, memory=memory)     # memory = model.encode(batch): encoder output rows
    log_probs, state = model.step(state, tokens)   # tokens (B,) int64 previous labels, 0 = <sos>;
                                                   # log_probs (B, V) normalised, column 0 = <eos>

States are (nested) NamedTuples of arrays whose leading axis is the row (hypothesis); the beam search
reorders rows with ``models.gather_state``. ``memory`` is a NamedTuple with at least ``lengths`` (B,)
(encoder frames; the maximum output length is tied to it) and optionally ``ctc_log_probs`` (B, T', V)
(a CTC branch, id 0 = blank) for joint decoding. Any model with these three things can use
:func:`decode_attention`; the beam search itself (:func:`attention_beam_search`) needs only ``step``
and a one-row initial state.

Scoring rule of a finished hypothesis y (labels y_1..y_n, then <eos>), m = n + 1 [attn-dec:score]:

    s(y) = (1 - lambda) log P_att(y <eos>) + lambda log P_ctc(y) + beta log P_lm(y <eos>) + gamma m
    s_norm(y) = s(y) / m   with ``length_norm=True``                      [attn-dec:length-norm]

lambda = ``ctc_weight``, beta = ``lm_weight``, gamma = ``length_reward``. A partial hypothesis g carries
the same sum with the CTC *prefix* probability psi(g) in place of P_ctc [attn-dec:ctc-prefix]; since all
hypotheses in the beam have the same length at a given step, neither gamma nor the normalisation
changes their order, and pruning ranks them by the weighted log-probabilities alone.
"""

from __future__ import annotations

from typing import List, NamedTuple, Optional, Sequence

import numpy as np

from .._state import gather_state
from .._validate import float_array, int_array, positive_int
from .lm_window import with_context_window

__all__ = ["AttentionHypothesis", "attention_beam_search", "brute_force_best", "attention_greedy_search",
           "ctc_prefix_scores",
           "ctc_prefix_extend", "ctc_prefix_initial", "CTCPrefixState", "decode_attention",
           "max_output_lengths"]

EOS = 0
NEG_INF = -np.inf


def _number(name: str, value, *, low: float = -np.inf, high: float = np.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__}")
    v = float(value)
    if not (low <= v <= high) or not np.isfinite(v):
        raise ValueError(f"{name}: expected a finite number in [{low}, {high}], got {value!r}")
    return v


class AttentionHypothesis(NamedTuple):
    """A finished hypothesis: label ids (no <sos>/<eos>) and its scores (natural logs, unweighted parts)."""

    tokens: tuple
    score: float  # what is ranked: s(y) or s(y) / m [attn-dec:score] [attn-dec:length-norm]
    att_log_prob: float  # log P_att(y <eos>)
    ctc_log_prob: float  # log P_ctc(y) (0.0 without a CTC branch)
    lm_log_prob: float  # log P_lm(y <eos>) (0.0 without fusion)


# ----------------------------------------------------------------------------- CTC prefix scores


class CTCPrefixState(NamedTuple):
    """Forward variables of a prefix g over the T frames (log domain, one row per hypothesis)."""

    log_gamma_n: np.ndarray  # (K, T) log P(frames 1..t emit g, the last frame emits g's last label)
    log_gamma_b: np.ndarray  # (K, T) log P(frames 1..t emit g, the last frame is blank)
    last: np.ndarray  # (K,) int64 last label of g (0: g is empty)
    log_psi: np.ndarray  # (K,) log prefix probability psi(g) (0.0 for the empty prefix)


def ctc_prefix_initial(ctc_log_probs: np.ndarray, *, blank: int = 0) -> CTCPrefixState:
    """The empty prefix: gamma_b(t) = prod_{tau <= t} x_tau(blank), gamma_n = 0 [attn-dec:ctc-init]."""
    lp = float_array("ctc_log_probs", ctc_log_probs, ndim=2).astype(np.float64)
    T = lp.shape[0]
    if T == 0:
        raise ValueError("ctc_log_probs: expected at least one frame, got 0")
    log_gamma_b = np.cumsum(lp[:, blank])[None, :]  # (1, T) [attn-dec:ctc-init]
    return CTCPrefixState(np.full((1, T), NEG_INF), log_gamma_b, np.zeros(1, np.int64), np.zeros(1))


def _phi(state: CTCPrefixState, c: np.ndarray) -> np.ndarray:
    """(K, C, T) log Phi_t(g, c): paths that have emitted g by frame t and may start c at t + 1."""
    same = state.last[:, None] == c[None, :]  # (K, C): c repeats g's last label
    n = np.where(same[:, :, None], NEG_INF, state.log_gamma_n[:, None, :])
    return np.logaddexp(state.log_gamma_b[:, None, :], n)  # [attn-dec:ctc-phi]


def ctc_prefix_scores(state: CTCPrefixState, ctc_log_probs: np.ndarray, *, blank: int = 0) -> np.ndarray:
    """log psi(g + c) for every hypothesis g (K rows of ``state``) and every id c: (K, V) float64.

    Column ``blank`` (= <eos> of the attention decoder) holds log P_ctc(g), the probability that the
    whole labelling is exactly g [attn-dec:ctc-eos]; column c != blank the prefix probability of g + c,
    summed over the frame t where c is first emitted [attn-dec:ctc-prefix].
    """
    lp = np.asarray(ctc_log_probs, dtype=np.float64)  # (T, V)
    T, V = lp.shape
    K = state.last.shape[0]
    c = np.arange(V)
    phi = _phi(state, c)  # (K, V, T)
    empty = (state.last == 0)[:, None]  # (K, 1): g is empty -> c may start at frame 1
    first = np.where(empty, lp[0][None, :], NEG_INF)  # (K, V) frame 1 starts c
    later = phi[:, :, :-1] + lp[1:].T[None, :, :]  # (K, V, T-1): c starts at frame t+1 after g by t
    out = np.logaddexp(first, _logsumexp(later, axis=2)) if T > 1 else first  # [attn-dec:ctc-prefix]
    out[:, blank] = np.logaddexp(state.log_gamma_n[:, -1], state.log_gamma_b[:, -1])  # [attn-dec:ctc-eos]
    assert out.shape == (K, V)
    return out


def ctc_prefix_extend(state: CTCPrefixState, rows: np.ndarray, tokens: np.ndarray, log_psi: np.ndarray,
                      ctc_log_probs: np.ndarray, *, blank: int = 0) -> CTCPrefixState:
    """Forward variables of h = g_rows[k] + tokens[k] (non-blank tokens), one T loop [attn-dec:ctc-rec]."""
    lp = np.asarray(ctc_log_probs, dtype=np.float64)
    T = lp.shape[0]
    g = gather_state(state, rows)
    K = tokens.shape[0]
    phi = _phi(g, tokens)[np.arange(K), np.arange(K)]  # (K, T): each row with its own token
    x_c = lp[:, tokens].T  # (K, T)
    n = np.full((K, T), NEG_INF)
    b = np.full((K, T), NEG_INF)
    n[:, 0] = np.where(g.last == 0, x_c[:, 0], NEG_INF)  # only the empty prefix starts at frame 1
    for t in range(1, T):
        n[:, t] = np.logaddexp(n[:, t - 1], phi[:, t - 1]) + x_c[:, t]  # [attn-dec:ctc-rec]
        b[:, t] = np.logaddexp(b[:, t - 1], n[:, t - 1]) + lp[t, blank]
    return CTCPrefixState(n, b, tokens.astype(np.int64), np.asarray(log_psi, dtype=np.float64))


def _logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return np.squeeze(m, axis) + np.log(np.sum(np.exp(a - m), axis=axis))


# ----------------------------------------------------------------------------- greedy


def attention_greedy_search(model, state, max_len, *, lm=None, lm_weight: float = 0.0) -> List[List[int]]:
    """Batched greedy decoding: at each step the arg-max of log P_att + beta log P_lm; stop at <eos>.

    ``state`` has B rows (``model.init_state(B, memory=...)``); ``max_len`` (B,) labels at most per
    row (<eos> is forced after them).
    """
    max_len = int_array("max_len", max_len, ndim=1)
    B = max_len.shape[0]
    beta = _number("lm_weight", lm_weight, low=0.0)
    lm = with_context_window(lm)  # gpt_lm: a window past its positions [lm:window]
    lm_state = lm.init_state(B) if lm is not None else None
    tokens = np.zeros(B, np.int64)  # <sos>
    out: List[List[int]] = [[] for _ in range(B)]
    alive = np.ones(B, bool)
    for n in range(int(max_len.max(initial=0)) + 1):
        lp, state = model.step(state, tokens)
        scores = np.asarray(lp, dtype=np.float64).copy()
        if lm is not None:
            lm_lp, lm_state = lm.step(lm_state, tokens)
            scores += beta * np.asarray(lm_lp, dtype=np.float64)
        nxt = scores.argmax(axis=1)
        nxt[n >= max_len] = EOS  # the length limit
        for b in np.nonzero(alive)[0]:
            if nxt[b] == EOS:
                alive[b] = False
            else:
                out[b].append(int(nxt[b]))
        if not alive.any():
            break
        tokens = np.where(alive, nxt, 0).astype(np.int64)
    return out


# ----------------------------------------------------------------------------- beam search


def attention_beam_search(model, state, *, beam_size: int, max_len: int, lm=None, lm_weight: float = 0.0,
                          ctc_log_probs: Optional[np.ndarray] = None, ctc_weight: float = 0.0,
                          length_norm: bool = False, length_reward: float = 0.0,
                          nbest: int = 1) -> List[AttentionHypothesis]:
    """Beam search for ONE utterance; returns the ``nbest`` best finished hypotheses, best first.

    ``state``: one-row initial state of ``model`` (its rows are replicated per hypothesis). At each step
    every active hypothesis g is extended by every id and the ``beam_size`` best extensions are kept
    (ESPnet's rule: with ``beam_size=1`` this is greedy decoding): an <eos> extension finishes its
    hypothesis, the others stay active (so the beam shrinks as hypotheses finish). A hypothesis with
    ``max_len`` labels can only finish. The search stops when no active hypothesis can beat the best
    finished one any more [attn-dec:stop] (exact: the score bound holds for every completion), or after
    ``max_len + 1`` steps. With ``beam_size`` >= V (V-1)^(max_len-1) nothing is pruned and the result
    is the exact arg-max of the scoring rule over every label sequence (the brute-force test).
    ``ctc_log_probs`` (T', V) (blank = 0) adds the CTC prefix score with weight ``ctc_weight``
    (Watanabe et al. 2017); ``lm`` (step interface, column 0 = <eos>) adds ``lm_weight`` log P_lm.
    """
    K = positive_int("beam_size", beam_size)
    max_len = positive_int("max_len", max_len, minimum=0)
    nbest = positive_int("nbest", nbest)
    beta = _number("lm_weight", lm_weight, low=0.0)
    lam = _number("ctc_weight", ctc_weight, low=0.0, high=1.0)
    gamma = _number("length_reward", length_reward)
    if not isinstance(length_norm, bool):
        raise TypeError(f"length_norm: expected True or False, got {length_norm!r}")
    if lam > 0 and ctc_log_probs is None:
        raise ValueError("ctc_weight: > 0 needs ctc_log_probs (the model's CTC branch)")
    lm = with_context_window(lm)  # gpt_lm: a window past its positions [lm:window]
    ctc_lp = None
    if ctc_log_probs is not None:
        ctc_lp = float_array("ctc_log_probs", ctc_log_probs, ndim=2).astype(np.float64)
    M = max_len + 1  # the largest m (labels + <eos>)

    def final(raw: np.ndarray, m: int) -> np.ndarray:  # [attn-dec:score] [attn-dec:length-norm]
        s = raw + gamma * m
        return s / m if length_norm else s

    def bound(raw: np.ndarray, n: int) -> np.ndarray:
        """Upper bound of final() over every completion of active hypotheses with n labels [attn-dec:stop]."""
        if length_norm:  # raw only decreases and stays <= 0; m <= M
            return raw / M + gamma
        return raw + max(gamma * (n + 1), gamma * M)

    # active beam: parallel arrays, one row per hypothesis
    seqs: List[tuple] = [()]
    raw = np.zeros(1)  # weighted log-probabilities so far [attn-dec:score]
    att = np.zeros(1)
    lmv = np.zeros(1)
    ctc_prev = np.zeros(1)  # log psi(g)
    tokens = np.zeros(1, np.int64)
    lm_state = lm.init_state(1) if lm is not None else None
    ctc_state = ctc_prefix_initial(ctc_lp) if ctc_lp is not None else None
    finished: List[AttentionHypothesis] = []
    best_final = -np.inf
    for n in range(max_len + 1):
        lp, state = model.step(state, tokens)
        lp = np.asarray(lp, dtype=np.float64)
        rows, V = lp.shape
        total = raw[:, None] + (1.0 - lam) * lp  # (rows, V)
        lm_lp = np.zeros_like(lp)
        if lm is not None:
            lm_lp, lm_state = lm.step(lm_state, tokens)
            lm_lp = np.asarray(lm_lp, dtype=np.float64)
            if lm_lp.shape != lp.shape:
                raise ValueError(f"lm: step returned log_probs of shape {lm_lp.shape}, expected {lp.shape}")
            total = total + beta * lm_lp
        psi = np.zeros_like(lp)
        if ctc_lp is not None:
            if ctc_lp.shape[1] != V:
                raise ValueError(f"ctc_log_probs: expected {V} columns (the decoder's vocabulary), "
                                 f"got {ctc_lp.shape[1]}")
            psi = ctc_prefix_scores(ctc_state, ctc_lp)  # (rows, V) [attn-dec:ctc-prefix] [attn-dec:ctc-eos]
            total = total + lam * (psi - ctc_prev[:, None])  # the prefix score replaces the previous one
        # the beam_size best extensions over every (hypothesis, id) pair, <eos> included; after
        # max_len labels only <eos> is allowed
        if n == max_len:
            total[:, 1:] = -np.inf
        flat = total.ravel()  # (rows * V,)
        order = np.argsort(-flat, kind="stable")[:K]
        order = order[np.isfinite(flat[order])]
        r_idx, c_idx = order // V, order % V
        # 1. an <eos> extension finishes its hypothesis
        for r in r_idx[c_idx == EOS]:
            fin = float(final(total[r, EOS], n + 1))
            finished.append(AttentionHypothesis(seqs[r], fin, float(att[r] + lp[r, EOS]), float(psi[r, EOS]),
                                                float(lmv[r] + lm_lp[r, EOS])))
            best_final = max(best_final, fin)
        # 2. the label extensions stay active
        keep = c_idx != EOS
        order, r_idx, c_idx = order[keep], r_idx[keep], c_idx[keep]
        if order.size == 0:
            break
        if best_final >= np.max(bound(flat[order], n + 1)):
            break  # [attn-dec:stop] nothing active can still win
        seqs = [seqs[r] + (int(c),) for r, c in zip(r_idx, c_idx)]
        raw = flat[order]
        att = att[r_idx] + lp[r_idx, c_idx]
        lmv = lmv[r_idx] + lm_lp[r_idx, c_idx]
        tokens = c_idx.astype(np.int64)
        state = gather_state(state, r_idx)
        if lm is not None:
            lm_state = gather_state(lm_state, r_idx)
        if ctc_lp is not None:
            ctc_prev = psi[r_idx, c_idx]
            ctc_state = ctc_prefix_extend(ctc_state, r_idx, tokens, ctc_prev, ctc_lp)
    finished.sort(key=lambda h: (-h.score, h.tokens))  # ties: the shorter / smaller ids first
    return finished[:nbest]


# ----------------------------------------------------------------------------- models


def max_output_lengths(lengths, max_len_ratio: float, *, minimum: int = 1) -> np.ndarray:
    """Maximum labels per utterance tied to the encoder length: max(minimum, ceil(ratio * L)).

    [attn-dec:max-len]"""
    r = _number("max_len_ratio", max_len_ratio, low=0.0)
    if r <= 0:
        raise ValueError(f"max_len_ratio: expected a positive number, got {max_len_ratio!r}")
    L = np.asarray(lengths, dtype=np.int64)
    return np.maximum(minimum, np.ceil(r * L).astype(np.int64))  # [attn-dec:max-len]


def decode_attention(model, memory, *, method: str = "greedy", beam_size: int = 1, lm=None,
                     lm_weight: float = 0.0, max_len_ratio: float = 1.0, length_norm: bool = False,
                     length_reward: float = 0.0, ctc_weight: float = 0.0,
                     nbest: Optional[int] = None) -> List[List[int]]:
    """Decode every utterance of ``memory`` (``model.encode(batch)``) with ``model.init_state``/``step``.

    ``method="greedy"`` runs the batched arg-max (with ``ctc_weight > 0`` it is a beam of one, since the
    CTC prefix score needs the per-hypothesis recursion); ``"beam"`` runs
    :func:`attention_beam_search` per utterance. With ``nbest`` (``"beam"`` only) each utterance gets its
    ``nbest`` best :class:`AttentionHypothesis` (for n-best rescoring) instead of one id list.
    """
    if method not in ("greedy", "beam"):
        raise ValueError(f"method: expected one of ['greedy', 'beam'], got {method!r}")
    if nbest is not None:
        nbest = positive_int("nbest", nbest)
        if method != "beam":
            raise ValueError("nbest: n-best lists come from the beam search (method 'beam')")
    lengths = np.asarray(memory.lengths, dtype=np.int64)
    B = lengths.shape[0]
    max_len = max_output_lengths(lengths, max_len_ratio)
    lam = _number("ctc_weight", ctc_weight, low=0.0, high=1.0)
    ctc = getattr(memory, "ctc_log_probs", None)
    if lam > 0 and ctc is None:
        raise ValueError("ctc_weight: this model has no CTC branch (train it with ctc_weight > 0)")
    if method == "greedy" and lam == 0:
        return attention_greedy_search(model, model.init_state(B, memory=memory), max_len, lm=lm,
                                       lm_weight=lm_weight)
    K = 1 if method == "greedy" else positive_int("beam_size", beam_size)
    out = []
    for b in range(B):
        mem_b = gather_state(memory, np.array([b]))
        hyps = attention_beam_search(
            model, model.init_state(1, memory=mem_b), beam_size=K, max_len=int(max_len[b]), lm=lm,
            lm_weight=lm_weight, ctc_log_probs=None if lam == 0 else ctc[b, :lengths[b]], ctc_weight=lam,
            length_norm=length_norm, length_reward=length_reward, nbest=nbest or 1)
        out.append(list(hyps) if nbest is not None else list(hyps[0].tokens))
    return out


def brute_force_best(score_fn, vocab_size: int, max_len: int) -> Sequence[int]:
    """The arg-max of ``score_fn(seq)`` over every label sequence of ids 1..V-1 with at most ``max_len``
    labels (for tests: the beam search's exact answer when nothing is pruned)."""
    import itertools
    best, best_s = (), -np.inf
    for n in range(max_len + 1):
        for seq in itertools.product(range(1, vocab_size), repeat=n):
            s = score_fn(seq)
            if s > best_s:
                best, best_s = seq, s
    return best
