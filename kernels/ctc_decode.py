"""CTC prefix beam search (Graves 2012, 7.5; Hannun et al. 2014, Algorithm 1), bigram-table shallow fusion.

Twin (same arguments after validation, same results): ``scratchasr.decode.ctc._prefix_beam_search_numpy``,
the readable dictionary-of-prefixes search; the public ``ctc_prefix_beam_search(..., backend="numba")``
validates, log-softmaxes and allocates, and this kernel only loops.
Equation tags: docs/equations/decoding.md [ctc-decode:prefix-init] [ctc-decode:prefix-blank]
[ctc-decode:prefix-repeat] [ctc-decode:prefix-extend] [ctc-decode:fusion] [ctc-decode:ties].

Fusion: only a language model whose next-token distribution depends on the last token alone (a bigram)
is fused here, as its ``(V, V)`` step table (row = last token, 0 = <s>; column = next token, 0 = </s>).
A generic step-interface LM (``init_state``/``step``) runs in the Python twin.

Layout. Prefixes live in a trie of nodes (``parent``, ``token``, ``length``, plus the prefix's fusion
term and LM log-prob), one node per distinct prefix (child lists find a prefix that left the beam and
came back); node 0 is the empty prefix. A frame's candidates are (node, extra) pairs:
``extra = -1`` keeps a beam prefix (blank or repeated last symbol), ``extra = c`` extends it by ``c``.
An extension that equals a prefix already in the beam (its parent is in the beam too) is merged into
that prefix's "keep" candidate. The ``beam_size`` best candidates are kept in a sorted array by
insertion; only survivors get nodes. The ranking is a strict total order [ctc-decode:ties]: higher
score first, equal scores by token sequence (lexicographic, a prefix before its extensions).

Exactness: compiled with ``fastmath=False`` (no contraction or reassociation) so every score is the
same sequence of IEEE operations as in the twin, bit for bit, and ties break identically.
"""

from __future__ import annotations

import math

import numpy as np

from ._njit import njit, prange


@njit(fastmath=False)
def _log_add(a, b):
    """log(exp(a) + exp(b)), with -inf as log 0 (symmetric in a, b, bit for bit)."""
    if a == -np.inf:
        return b
    if b == -np.inf:
        return a
    if a > b:
        return a + math.log1p(math.exp(b - a))
    return b + math.log1p(math.exp(a - b))


@njit(fastmath=False)
def _write_tokens(node, extra, parent, token, length, buf):
    """Write the token sequence of candidate (node, extra) into buf; return its length."""
    n = length[node]
    k = node
    for i in range(n - 1, -1, -1):
        buf[i] = token[k]
        k = parent[k]
    if extra >= 0:
        buf[n] = extra
        return n + 1
    return n


@njit(fastmath=False)
def _before(score_a, node_a, extra_a, score_b, node_b, extra_b, parent, token, length, buf_a, buf_b):
    """True when candidate a ranks before b: higher score, then smaller token sequence [ctc-decode:ties]."""
    if score_a > score_b:
        return True
    if score_a < score_b:
        return False
    la = _write_tokens(node_a, extra_a, parent, token, length, buf_a)
    lb = _write_tokens(node_b, extra_b, parent, token, length, buf_b)
    for i in range(min(la, lb)):
        if buf_a[i] != buf_b[i]:
            return buf_a[i] < buf_b[i]
    return la < lb                                          # a proper prefix comes first


@njit(fastmath=False)
def _search_one(lp, K, blank, use_lm, lm_scaled, lm_raw, bonus, threshold,
                out_tokens, out_len, out_score, out_ctc, out_lm):
    """Beam search over one utterance lp (T, V) float64 log-probs; fills the out_* rows, returns the count."""
    T, V = lp.shape
    N = T * K + 1                                           # at most K new nodes per frame
    parent = np.empty(N, dtype=np.int64)
    token = np.empty(N, dtype=np.int64)
    length = np.empty(N, dtype=np.int64)
    fus = np.empty(N, dtype=np.float64)                     # lm_weight * log P_lm + bonus * len
    lm_sum = np.empty(N, dtype=np.float64)                  # log P_lm of the prefix (no </s>)
    first_child = np.empty(N, dtype=np.int64)              # the trie's child lists
    next_sibling = np.empty(N, dtype=np.int64)
    first_child[0] = -1
    next_sibling[0] = -1
    parent[0] = -1
    token[0] = 0
    length[0] = 0
    fus[0] = 0.0
    lm_sum[0] = 0.0
    n_nodes = 1
    b_node = np.empty(K, dtype=np.int64)                    # the beam: node, log p_b, log p_nb
    b_pb = np.empty(K, dtype=np.float64)
    b_pnb = np.empty(K, dtype=np.float64)
    b_node[0] = 0
    b_pb[0] = 0.0                                           # [ctc-decode:prefix-init]
    b_pnb[0] = -np.inf
    n_beam = 1
    s_node = np.empty(K, dtype=np.int64)                    # the selection, best first
    s_extra = np.empty(K, dtype=np.int64)
    s_pb = np.empty(K, dtype=np.float64)
    s_pnb = np.empty(K, dtype=np.float64)
    s_score = np.empty(K, dtype=np.float64)
    s_fus = np.empty(K, dtype=np.float64)
    s_lm = np.empty(K, dtype=np.float64)
    slot_of = np.full(N, -1, dtype=np.int64)                # node -> its beam index (current beam only)
    merged = np.zeros((K, V), dtype=np.bool_)               # [j, c]: beam entry j + c is in the beam
    buf_a = np.empty(T + 1, dtype=np.int64)
    buf_b = np.empty(T + 1, dtype=np.int64)

    for t in range(T):
        row = lp[t]                                          # (V,)
        for i in range(n_beam):
            slot_of[b_node[i]] = i
        for i in range(n_beam):
            nd = b_node[i]
            if length[nd] > 0 and slot_of[parent[nd]] >= 0:
                merged[slot_of[parent[nd]], token[nd]] = True
        n_sel = 0
        for phase in range(2):                               # 0: keep beam prefixes, 1: extend them
            for j in range(n_beam):
                nd = b_node[j]
                p_tot = _log_add(b_pb[j], b_pnb[j])
                last = token[nd] if length[nd] > 0 else -1
                lm_h = last if last > 0 else 0               # LM history: the last token, 0 = <s>
                c0 = -1 if phase == 0 else 0
                c1 = 0 if phase == 0 else V
                for c in range(c0, c1):
                    if phase == 0:                           # c = -1: the prefix itself
                        extra = -1
                        pb = p_tot + row[blank]              # [ctc-decode:prefix-blank]
                        pnb = -np.inf
                        f = fus[nd]
                        lm_new = lm_sum[nd]
                        if last >= 0:
                            pnb = b_pnb[j] + row[last]       # [ctc-decode:prefix-repeat]
                            p = slot_of[parent[nd]]
                            if p >= 0 and row[last] >= threshold:   # merge the parent's extension
                                pn = b_node[p]
                                src = b_pb[p] if (length[pn] > 0 and token[pn] == last) else _log_add(b_pb[p],
                                                                                                     b_pnb[p])
                                if src != -np.inf:
                                    pnb = _log_add(pnb, src + row[last])    # [ctc-decode:prefix-extend]
                        score = _log_add(pb, pnb) + f
                    else:
                        if c == blank or row[c] < threshold or merged[j, c]:
                            continue
                        src = b_pb[j] if c == last else p_tot
                        if src == -np.inf:
                            continue                         # no path: no new prefix
                        extra = c
                        pb = -np.inf
                        pnb = src + row[c]                   # [ctc-decode:prefix-extend]
                        if use_lm:
                            f = fus[nd] + (bonus + lm_scaled[lm_h, c])       # [ctc-decode:fusion]
                            lm_new = lm_sum[nd] + lm_raw[lm_h, c]
                        else:
                            f = fus[nd] + bonus
                            lm_new = lm_sum[nd]
                        score = pnb + f
                    if score == -np.inf:
                        continue                             # an impossible prefix never enters the beam
                    # insert into the sorted selection (strict order [ctc-decode:ties])
                    if n_sel == K and (score < s_score[K - 1] or (score == s_score[K - 1] and not _before(
                            score, nd, extra, s_score[K - 1], s_node[K - 1], s_extra[K - 1], parent, token,
                            length, buf_a, buf_b))):
                        continue                             # the score test first: _before is a call
                    pos = n_sel if n_sel < K else K - 1
                    while pos > 0 and (score > s_score[pos - 1] or (score == s_score[pos - 1] and _before(
                            score, nd, extra, s_score[pos - 1], s_node[pos - 1], s_extra[pos - 1], parent,
                            token, length, buf_a, buf_b))):
                        if pos < K:
                            s_node[pos] = s_node[pos - 1]
                            s_extra[pos] = s_extra[pos - 1]
                            s_pb[pos] = s_pb[pos - 1]
                            s_pnb[pos] = s_pnb[pos - 1]
                            s_score[pos] = s_score[pos - 1]
                            s_fus[pos] = s_fus[pos - 1]
                            s_lm[pos] = s_lm[pos - 1]
                        pos -= 1
                    s_node[pos] = nd
                    s_extra[pos] = extra
                    s_pb[pos] = pb
                    s_pnb[pos] = pnb
                    s_score[pos] = score
                    s_fus[pos] = f
                    s_lm[pos] = lm_new
                    if n_sel < K:
                        n_sel += 1
        for i in range(n_beam):                              # clear this frame's bookkeeping
            nd = b_node[i]
            if length[nd] > 0 and slot_of[parent[nd]] >= 0:
                merged[slot_of[parent[nd]], token[nd]] = False
        for i in range(n_beam):
            slot_of[b_node[i]] = -1
        for k in range(n_sel):                               # survivors become the beam
            if s_extra[k] >= 0:
                # one node per prefix: a prefix that left the beam and comes back reuses its node, so
                # "the parent of beam entry i is beam entry j" is a node comparison
                ch = first_child[s_node[k]]
                while ch >= 0 and token[ch] != s_extra[k]:
                    ch = next_sibling[ch]
                if ch < 0:
                    ch = n_nodes
                    n_nodes += 1
                    parent[ch] = s_node[k]
                    token[ch] = s_extra[k]
                    length[ch] = length[s_node[k]] + 1
                    fus[ch] = s_fus[k]
                    lm_sum[ch] = s_lm[k]
                    first_child[ch] = -1
                    next_sibling[ch] = first_child[s_node[k]]
                    first_child[s_node[k]] = ch
                b_node[k] = ch
            else:
                b_node[k] = s_node[k]
            b_pb[k] = s_pb[k]
            b_pnb[k] = s_pnb[k]
        n_beam = n_sel

    # end of utterance: add lm_weight * log P(</s> | last) and rank again [ctc-decode:fusion]
    f_score = np.empty(K, dtype=np.float64)
    f_ctc = np.empty(K, dtype=np.float64)
    f_lm = np.empty(K, dtype=np.float64)
    f_node = np.empty(K, dtype=np.int64)
    n_fin = 0
    for k in range(n_beam):
        nd = b_node[k]
        ctc = _log_add(b_pb[k], b_pnb[k])
        end = 0.0
        lm_total = lm_sum[nd]
        if use_lm:
            lm_h = token[nd] if length[nd] > 0 else 0
            end = lm_scaled[lm_h, 0]
            lm_total = lm_sum[nd] + lm_raw[lm_h, 0]
        score = ctc + fus[nd] + end
        if score == -np.inf:
            continue                                         # impossible once </s> is scored
        pos = n_fin                                          # insertion sort, same order as the selection
        n_fin += 1
        while pos > 0 and _before(score, nd, -1, f_score[pos - 1], f_node[pos - 1], -1,
                                  parent, token, length, buf_a, buf_b):
            f_score[pos] = f_score[pos - 1]
            f_ctc[pos] = f_ctc[pos - 1]
            f_lm[pos] = f_lm[pos - 1]
            f_node[pos] = f_node[pos - 1]
            pos -= 1
        f_score[pos] = score
        f_ctc[pos] = ctc
        f_lm[pos] = lm_total
        f_node[pos] = nd
    n_out = min(n_fin, out_score.shape[0])
    for k in range(n_out):
        out_len[k] = _write_tokens(f_node[k], -1, parent, token, length, buf_a)
        for i in range(out_len[k]):
            out_tokens[k, i] = buf_a[i]
        out_score[k] = f_score[k]
        out_ctc[k] = f_ctc[k]
        out_lm[k] = f_lm[k]
    return n_out


@njit(parallel=True, fastmath=False)
def ctc_prefix_beam_search_kernel(log_probs, lengths, beam_size, blank, use_lm, lm_scaled, lm_raw,
                                  insertion_bonus, token_threshold, out_tokens, out_len, out_score,
                                  out_ctc, out_lm, out_count):
    """Prefix beam search over a batch. Twin: ``scratchasr.decode.ctc._prefix_beam_search_numpy``.

    Args:
        log_probs: ``(B, T, V)`` float64 log-softmax outputs; frames at or past ``lengths[b]`` are not read.
        lengths: ``(B,)`` int64.
        beam_size, blank: ints. use_lm: bool; ``lm_scaled = lm_weight * lm_raw``, both ``(V, V)`` float64
            step tables (unused when ``use_lm`` is False).
        insertion_bonus: added per emitted token. token_threshold: non-blank symbols below it are not
            extended (``-inf``: all).
        out_tokens ``(B, N, T)`` int64, out_len ``(B, N)`` int64, out_score / out_ctc / out_lm ``(B, N)``
            float64: the ``N`` best hypotheses, best first; out_count ``(B,)``: how many were filled.
    """
    B = log_probs.shape[0]
    for b in prange(B):                                      # one utterance per iteration
        out_count[b] = _search_one(log_probs[b, :lengths[b]], beam_size, blank, use_lm, lm_scaled, lm_raw,
                                   insertion_bonus, token_threshold, out_tokens[b], out_len[b],
                                   out_score[b], out_ctc[b], out_lm[b])
