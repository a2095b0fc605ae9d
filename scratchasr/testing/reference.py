"""Readable references: naive loops straight from the papers and brute-force sums over every alignment.

Tests, walkthroughs, course assignments and their graders import these instead of keeping private copies
(../shared/STYLE.md). Each function is plain Python loops over one equation of docs/equations/, cited by
its tag; none is fast, none shares code with the implementation it checks, and the brute-force ones
enumerate every path or alignment, so keep the sizes tiny (V ** T CTC paths, C(T + U - 1, U) RNN-T
alignments). Everything is computed in float64 (or the ``dtype`` asked for).

* basic ops: :func:`linear_naive`, :func:`softmax_naive`, :func:`log_softmax`, :func:`layer_norm_naive`
  (docs/equations/ops.md);
* the LSTM over a ragged batch, either direction: :func:`lstm_naive` (docs/equations/lstm.md);
* attention: :func:`sdpa_naive` (masked scaled dot-product attention) and :func:`location_attention_naive`
  (Chorowski et al. 2015) (docs/equations/attention.md);
* CTC (Graves et al. 2006): :func:`ctc_collapse`, :func:`ctc_paths`, :func:`ctc_brute_force_nll`,
  :func:`ctc_brute_force_best_path`, :func:`ctc_brute_force_grad`, :func:`ctc_labelling_log_probs`,
  :func:`ctc_prefix_probs`, :func:`ctc_state_paths`, :func:`ctc_greedy_naive` (docs/equations/ctc.md,
  docs/equations/decoding.md);
* RNN-T (Graves 2012): :func:`rnnt_alignments`, :func:`rnnt_brute_force_nll`, :func:`rnnt_brute_force_grad`
  (with FastEmit, Yu et al. 2021) (docs/equations/rnnt.md); the model-level enumerations live in
  :mod:`scratchasr.testing.transducer_reference` and are re-exported here;
* monotonic attention and MoChA (Raffel et al. 2017, Chiu & Raffel 2018): :func:`mocha_alpha_naive`,
  :func:`mocha_beta_naive` (docs/equations/mocha.md);
* decoding and scoring: :func:`brute_force_best` (the exact answer of an unpruned beam search),
  :func:`edit_alignments` and :func:`alignment_cost` (every alignment of two sequences and sclite's
  weighted cost), :func:`levenshtein_naive` (docs/equations/decoding.md).
"""

from __future__ import annotations

import itertools
import math
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .transducer_reference import (alignments, brute_force_log_likelihood, label_sequences, lattice_log_probs,
                                   one_symbol_log_prob, sequence_log_prob)

__all__ = [
    "linear_naive", "softmax_naive", "log_softmax", "layer_norm_naive", "lstm_naive", "sdpa_naive",
    "location_attention_naive", "ctc_collapse", "ctc_paths", "ctc_brute_force_nll",
    "ctc_brute_force_best_path", "ctc_brute_force_grad", "ctc_labelling_log_probs", "ctc_prefix_probs",
    "ctc_state_paths", "ctc_greedy_naive", "rnnt_alignments", "rnnt_brute_force_nll", "rnnt_brute_force_grad",
    "mocha_alpha_naive", "mocha_beta_naive", "brute_force_best", "edit_alignments", "alignment_cost",
    "levenshtein_naive", "SCLITE_COSTS",
    # re-exported from transducer_reference
    "alignments", "brute_force_log_likelihood", "lattice_log_probs", "sequence_log_prob",
    "one_symbol_log_prob", "label_sequences",
]


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


# --------------------------------------------------------------------------------------------- basic ops

def linear_naive(x: np.ndarray, W: np.ndarray, b: Optional[np.ndarray] = None) -> np.ndarray:
    """[ops:linear] y[n, o] = sum_d x[n, d] W[o, d] + b[o], one product at a time. x (N, D), W (O, D)."""
    N, D = x.shape
    y = np.zeros((N, W.shape[0]))
    for n in range(N):
        for o in range(W.shape[0]):
            s = 0.0 if b is None else float(b[o])
            for d in range(D):
                s += float(x[n, d]) * float(W[o, d])
            y[n, o] = s
    return y


def softmax_naive(x: np.ndarray) -> np.ndarray:
    """[ops:softmax] y_i = exp(x_i - m) / sum_j exp(x_j - m) over the last axis of a 2-D x (N, V)."""
    N, V = x.shape
    y = np.zeros((N, V))
    for n in range(N):
        m = max(float(v) for v in x[n])
        z = sum(math.exp(float(x[n, j]) - m) for j in range(V))
        for i in range(V):
            y[n, i] = math.exp(float(x[n, i]) - m) / z
    return y


def log_softmax(x: np.ndarray) -> np.ndarray:
    """[ops:log-softmax] log y = x - m - log sum exp(x - m) over the last axis, any shape, float64.

    Vectorised (not a loop): it is the normaliser every brute force below starts from."""
    x = np.asarray(x, dtype=np.float64)
    m = x.max(-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def layer_norm_naive(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """[ops:layer-norm] per row of x (N, D): mean mu, biased variance v,
    y = gamma (x - mu) / sqrt(v + eps) + beta."""
    N, D = x.shape
    y = np.zeros((N, D))
    for n in range(N):
        mu = sum(float(v) for v in x[n]) / D
        var = sum((float(v) - mu) ** 2 for v in x[n]) / D
        for d in range(D):
            y[n, d] = float(gamma[d]) * (float(x[n, d]) - mu) / math.sqrt(var + eps) + float(beta[d])
    return y


# ------------------------------------------------------------------------------------------------ LSTM

def lstm_naive(x: np.ndarray, lengths, h0: np.ndarray, c0: np.ndarray, W_ih: np.ndarray, W_hh: np.ndarray,
               b: np.ndarray, reverse: bool = False) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One sequence at a time, one step at a time: ``(y (B, T, H), h_n (B, H), c_n (B, H))``.

    [lstm:preact] a = W_ih x_t + W_hh h + b; [lstm:gates] i, f, g, o (PyTorch order); [lstm:cell]
    c = f c + i g; [lstm:hidden] h = o tanh(c); [lstm:mask] steps past the length are not run (y = 0, the
    state after the last valid step is returned); [lstm:reverse] the reverse direction starts at each
    sequence's last valid frame."""
    # BEGIN ASSIGNMENT A2
    B, T, _ = x.shape
    H = h0.shape[1]
    y = np.zeros((B, T, H))
    hn, cn = np.array(h0, dtype=np.float64), np.array(c0, dtype=np.float64)
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    for n in range(B):
        h, c = hn[n].copy(), cn[n].copy()
        L = int(lengths[n])
        steps = range(L - 1, -1, -1) if reverse else range(L)        # [lstm:reverse]
        for t in steps:
            a = W_ih @ x[n, t] + W_hh @ h + b                        # [lstm:preact]
            i, f, g, o = sig(a[:H]), sig(a[H:2 * H]), np.tanh(a[2 * H:3 * H]), sig(a[3 * H:])  # [lstm:gates]
            c = f * c + i * g                                        # [lstm:cell]
            h = o * np.tanh(c)                                       # [lstm:hidden]
            y[n, t] = h
        hn[n], cn[n] = h, c                                          # [lstm:mask]
    return y, hn, cn
    # END ASSIGNMENT


# ------------------------------------------------------------------------------------------- attention

def sdpa_naive(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: Optional[np.ndarray] = None, *,
               dtype=np.float64) -> np.ndarray:
    """Masked scaled dot-product attention, one query row at a time: out (B, H, Tq, dv).

    [attn:scores] s_j = q . k_j / sqrt(d); [attn:softmax] over the allowed keys only, maximum subtracted;
    a row with no allowed key gives a zero output; [attn:out] out = sum_j P_j v_j. ``mask`` is boolean,
    broadcastable to (B, H, Tq, Tk), True where attending is allowed ([attn:mask]). ``dtype`` sets the
    precision of every sum (``np.longdouble`` for scores far outside exp's float64 range)."""
    q, k, v = (np.asarray(a, dtype=dtype) for a in (q, k, v))
    B, H, Tq, d = q.shape
    Tk, dv = k.shape[2], v.shape[3]
    M = np.ones((B, H, Tq, Tk), bool) if mask is None else np.broadcast_to(mask, (B, H, Tq, Tk))
    out = np.zeros((B, H, Tq, dv), dtype=dtype)
    scale = np.sqrt(dtype(d))
    for b in range(B):
        for h in range(H):
            for i in range(Tq):
                allowed = [j for j in range(Tk) if M[b, h, i, j]]
                if not allowed:
                    continue                                          # [attn:softmax] empty row -> 0
                s = {j: sum(q[b, h, i, c] * k[b, h, j, c] for c in range(d)) / scale for j in allowed}
                m = max(s.values())
                w = {j: np.exp(s[j] - m) for j in allowed}
                z = sum(w.values())
                for j in allowed:
                    out[b, h, i] += (w[j] / z) * v[b, h, j]           # [attn:out]
    return out


def location_attention_naive(query: np.ndarray, keys: np.ndarray, values: np.ndarray, alpha_prev: np.ndarray,
                             lengths, W_q: np.ndarray, w: np.ndarray, F: np.ndarray, U: np.ndarray, *,
                             smoothing: bool = False) -> Tuple[np.ndarray, np.ndarray]:
    """Location-aware attention (Chorowski et al. 2015), one utterance at a time: (context (B, Dv),
    alpha (B, T)).

    Same arguments as ``ops.additive_attention.location_attention_forward``. [attn:location-conv]
    f_j = sum_kappa F[:, kappa] alpha_prev[j + kappa - K//2] (zero outside the utterance);
    [attn:location-energy] e_j = w . tanh(W_q s + k_j + U f_j); [attn:smooth] softmax, or sigmoids
    normalised to sum 1 with ``smoothing``; [attn:context] c = sum_j alpha_j v_j. Frames past the length get
    alpha = 0; a length of 0 gives a zero context."""
    B, T, _ = keys.shape
    C, K = F.shape
    ctx = np.zeros((B, values.shape[2]))
    alpha = np.zeros((B, T))
    for n in range(B):
        L = int(lengths[n])
        if L == 0:
            continue
        e = np.zeros(L)
        for j in range(L):
            f = np.zeros(C)
            for c in range(C):
                for kappa in range(K):
                    src = j + kappa - K // 2
                    if 0 <= src < L:
                        f[c] += F[c, kappa] * alpha_prev[n, src]      # [attn:location-conv]
            e[j] = w @ np.tanh(W_q @ query[n] + keys[n, j] + U @ f)    # [attn:location-energy]
        a = 1 / (1 + np.exp(-e)) if smoothing else np.exp(e - e.max())  # [attn:smooth]
        alpha[n, :L] = a / a.sum()
        for j in range(L):
            ctx[n] += alpha[n, j] * values[n, j]                       # [attn:context]
    return ctx, alpha


# ------------------------------------------------------------------------------------------------- CTC

def ctc_collapse(path: Sequence[int], blank: int = 0) -> Tuple[int, ...]:
    """The CTC map B: merge repeated symbols, then drop blanks ([ctc-decode:greedy] applies it)."""
    out, prev = [], None
    for k in path:
        if k != prev and k != blank:
            out.append(int(k))
        prev = k
    return tuple(out)


def ctc_paths(log_probs: np.ndarray, blank: int = 0) -> Iterator[Tuple[Tuple[int, ...], float]]:
    """Every one of the V ** T frame paths as (collapsed labelling, log-probability): log_probs (T, V)."""
    T, V = log_probs.shape
    for path in itertools.product(range(V), repeat=T):
        yield ctc_collapse(path, blank), float(sum(log_probs[t, s] for t, s in enumerate(path)))


def ctc_brute_force_nll(logits: np.ndarray, y: Sequence[int], blank: int = 0) -> float:
    """-log sum over every path that collapses to y of prod_t p_t(pi_t): the definition of CTC, no recursion
    ([ctc:log-softmax], then the sum the recursions [ctc:alpha-rec] / [ctc:loglik] compute). logits (T, V)
    unnormalised; ``inf`` when no path collapses to y."""
    lp = log_softmax(logits)
    terms = [s for lab, s in ctc_paths(lp, blank) if lab == tuple(y)]
    return float(-np.logaddexp.reduce(terms)) if terms else math.inf


def ctc_brute_force_best_path(logits: np.ndarray, y: Sequence[int], blank: int = 0) -> float:
    """max over the paths that collapse to y of their log-probability ([ctc:viterbi]); -inf if none."""
    lp = log_softmax(logits)
    best = [s for lab, s in ctc_paths(lp, blank) if lab == tuple(y)]
    return max(best) if best else -math.inf


def ctc_brute_force_grad(logits: np.ndarray, y: Sequence[int], blank: int = 0) -> Tuple[float, np.ndarray]:
    """(loss, dL/dlogits (T, V)) by enumeration: [ctc:grad] dL/dx_{t,k} = p_t(k) - P(pi_t = k | y, x), the
    posterior being the weight of the paths through symbol k at frame t ([ctc:occupancy] summed over the
    states carrying k). The loss is -log p(y | x); an infeasible y gives (inf, zeros)."""
    lp = log_softmax(logits)
    T, V = lp.shape
    paths = [(p, float(sum(lp[t, s] for t, s in enumerate(p))))
             for p in itertools.product(range(V), repeat=T) if ctc_collapse(p, blank) == tuple(y)]
    if not paths:
        return math.inf, np.zeros((T, V))
    log_py = float(np.logaddexp.reduce([s for _, s in paths]))
    post = np.zeros((T, V))
    for p, s in paths:
        for t, k in enumerate(p):
            post[t, k] += math.exp(s - log_py)
    return -log_py, np.exp(lp) - post


def ctc_labelling_log_probs(log_probs: np.ndarray, blank: int = 0) -> Dict[Tuple[int, ...], float]:
    """log P(z | x) of every labelling z with a nonzero probability: the sum over all V ** T paths, grouped
    by what they collapse to (the exact answer a CTC prefix beam search approximates). log_probs (T, V)."""
    probs: Dict[Tuple[int, ...], float] = {}
    for lab, s in ctc_paths(log_probs, blank):
        probs[lab] = probs.get(lab, 0.0) + math.exp(s)
    return {k: math.log(v) for k, v in probs.items()}


def ctc_prefix_probs(log_probs: np.ndarray, blank: int = 0
                     ) -> Tuple[Dict[Tuple[int, ...], float], Dict[Tuple[int, ...], float]]:
    """(prefix, full) probabilities (not logs) over label tuples: full[z] = P(z | x) and prefix[g] the
    probability of every labelling that starts with g ([attn-dec:ctc-prefix] by enumeration)."""
    prefix: Dict[Tuple[int, ...], float] = {}
    full: Dict[Tuple[int, ...], float] = {}
    for lab, s in ctc_paths(log_probs, blank):
        p = math.exp(s)
        full[lab] = full.get(lab, 0.0) + p
        for n in range(len(lab) + 1):
            prefix[lab[:n]] = prefix.get(lab[:n], 0.0) + p
    return prefix, full


def ctc_state_paths(y: Sequence[int], blank: int, T: int) -> Iterator[Tuple[List[int], Tuple[int, ...]]]:
    """Every valid state sequence of the CTC lattice over T frames, as (l', states): [ctc:extended] start in
    state 0 or 1, end in N-1 or N-2, each step stays, moves one state, or skips two onto a label that
    differs from the one two states back."""
    ext = [blank]
    for k in y:
        ext += [int(k), blank]
    N = len(ext)
    for path in itertools.product(range(N), repeat=T):
        if path[0] > 1 or path[-1] < N - 2:
            continue
        ok = True
        for a, b in zip(path, path[1:]):
            step = b - a
            if not (0 <= step <= 2) or (step == 2 and (ext[b] == blank or ext[b] == ext[b - 2])):
                ok = False
                break
        if ok:
            yield ext, path


def ctc_greedy_naive(log_probs: np.ndarray, length: Optional[int] = None, blank: int = 0) -> List[int]:
    """[ctc-decode:greedy] the arg-max symbol of each frame t < length (first index on ties), collapsed."""
    T = log_probs.shape[0] if length is None else int(length)
    best = []
    for t in range(T):
        k_best = 0
        for k in range(log_probs.shape[1]):
            if log_probs[t, k] > log_probs[t, k_best]:
                k_best = k
        best.append(k_best)
    return list(ctc_collapse(best, blank))


# ----------------------------------------------------------------------------------------------- RNN-T

def rnnt_alignments(T: int, U: int) -> Iterator[Tuple[int, ...]]:
    """Every RNN-T alignment as the positions (among T + U - 1 symbols) of the U labels; the last of the
    T + U symbols is always the blank that leaves the last frame ([rnnt:loglik])."""
    yield from itertools.combinations(range(T + U - 1), U)


def _rnnt_walk(label_slots: Tuple[int, ...], T: int, U: int) -> Iterator[Tuple[int, int, bool]]:
    """The lattice nodes (t, u) an alignment visits with, for each, whether it emits a label there."""
    t = u = 0
    for i in range(T + U):
        if i in label_slots:
            yield t, u, True
            u += 1
        else:
            yield t, u, False
            t += 1


def rnnt_brute_force_nll(logits: np.ndarray, y: Sequence[int], blank: int = 0) -> float:
    """-log of the sum over every alignment (an ordering of T blanks and U labels ending in a blank) of the
    product of P(symbol | t, u), walking the lattice: the sum [rnnt:alpha-rec] / [rnnt:loglik] compute.
    logits (T, U + 1, V) unnormalised ([rnnt:log-softmax])."""
    T, U = logits.shape[0], len(y)
    lp = log_softmax(logits)
    terms = []
    for slots in rnnt_alignments(T, U):
        total = 0.0
        for t, u, emit in _rnnt_walk(slots, T, U):
            total += lp[t, u, y[u]] if emit else lp[t, u, blank]
        terms.append(total)
    return float(-np.logaddexp.reduce(terms))


def rnnt_brute_force_grad(logits: np.ndarray, y: Sequence[int], blank: int = 0, fastemit_lambda: float = 0.0
                          ) -> Tuple[float, np.ndarray]:
    """(loss, dL/dlogits (T, U + 1, V)) by enumeration of the alignments.

    g_blank(t, u) and g_y(t, u) are the posterior probabilities that the alignment takes the blank or the
    label transition out of node (t, u); gamma = g_blank + g_y. Then [rnnt:grad] and, with lambda > 0,
    [rnnt:fastemit]: dL/dh_{t,u,k} = P(k|t,u) (gamma + lambda g_y) - [k = blank] g_blank
    - [k = y_{u+1}] (1 + lambda) g_y. The loss value does not depend on lambda."""
    T, U1, V = logits.shape
    U = len(y)
    lp = log_softmax(logits)
    weighted = []
    for slots in rnnt_alignments(T, U):
        steps = list(_rnnt_walk(slots, T, U))
        weighted.append((steps, sum(lp[t, u, y[u]] if e else lp[t, u, blank] for t, u, e in steps)))
    log_py = float(np.logaddexp.reduce([s for _, s in weighted]))
    g_blank, g_y = np.zeros((T, U1)), np.zeros((T, U1))
    for steps, s in weighted:
        w = math.exp(s - log_py)
        for t, u, emit in steps:
            if emit:
                g_y[t, u] += w
            else:
                g_blank[t, u] += w
    lam = float(fastemit_lambda)
    grad = np.exp(lp) * (g_blank + g_y + lam * g_y)[..., None]        # [rnnt:fastemit]
    for t in range(T):
        for u in range(U1):
            grad[t, u, blank] -= g_blank[t, u]
            if u < U:
                grad[t, u, y[u]] -= (1 + lam) * g_y[t, u]
    return -log_py, grad


# --------------------------------------------------------------------------------------- MoChA

def mocha_alpha_naive(p: np.ndarray, alpha_prev: np.ndarray, L: Optional[int] = None) -> np.ndarray:
    """[mocha:alpha-sum] Raffel et al. 2017: alpha_j = p_j sum_{k<=j} alpha_prev_k prod_{l=k}^{j-1} (1 - p_l),
    the triple loop as written, over the first L frames (the rest 0). p, alpha_prev (T,)."""
    T = len(p)
    L = T if L is None else int(L)
    out = np.zeros(T)
    for j in range(L):
        s = 0.0
        for k in range(j + 1):
            prod = 1.0
            for m in range(k, j):
                prod *= 1.0 - p[m]
            s += alpha_prev[k] * prod
        out[j] = p[j] * s
    return out


def mocha_beta_naive(alpha: np.ndarray, u: np.ndarray, w: int, L: Optional[int] = None) -> np.ndarray:
    """[mocha:beta-sum] Chiu & Raffel 2018: beta_j = sum_{k=j}^{j+w-1} alpha_k exp(u_j) / sum_{l=k-w+1}^{k}
    exp(u_l), sums restricted to the first L frames (a chunk ending at k < w - 1 starts at frame 0). One
    global shift of u keeps exp finite for energies of moderate size. alpha, u (T,)."""
    T = len(alpha)
    L = T if L is None else int(L)
    out = np.zeros(T)
    if L == 0:
        return out
    shift = max(float(v) for v in u[:L])
    for j in range(L):
        for k in range(j, min(j + w, L)):
            den = sum(math.exp(float(u[m]) - shift) for m in range(max(0, k - w + 1), k + 1))
            out[j] += alpha[k] * math.exp(float(u[j]) - shift) / den
    return out


# ------------------------------------------------------------------------------- decoding and scoring

def brute_force_best(score_fn: Callable[[Tuple[int, ...]], float], vocab_size: int,
                     max_len: int) -> Tuple[int, ...]:
    """The arg-max of ``score_fn(seq)`` over every sequence of ids 1..vocab_size-1 with at most ``max_len``
    labels, shorter and then lexicographically smaller sequences first on ties: what a beam search that
    prunes nothing returns ([attn-dec:score])."""
    best, best_s = (), -math.inf
    for n in range(max_len + 1):
        for seq in itertools.product(range(1, vocab_size), repeat=n):
            s = score_fn(seq)
            if s > best_s:
                best, best_s = seq, s
    return best


SCLITE_COSTS = {"C": 0, "S": 4, "D": 3, "I": 3}  # [edit:rec] sclite's weights


def edit_alignments(ref: Sequence, hyp: Sequence) -> Iterator[Tuple[str, ...]]:
    """Every alignment of ref with hyp as a tuple of ops C/S/D/I (exponential; tiny inputs only)."""
    ref, hyp = tuple(ref), tuple(hyp)
    if not ref and not hyp:
        yield ()
        return
    if ref and hyp:
        op = "C" if ref[0] == hyp[0] else "S"
        for rest in edit_alignments(ref[1:], hyp[1:]):
            yield (op,) + rest
    if ref:
        for rest in edit_alignments(ref[1:], hyp):
            yield ("D",) + rest
    if hyp:
        for rest in edit_alignments(ref, hyp[1:]):
            yield ("I",) + rest


def alignment_cost(ops: Sequence[str], costs: Optional[Dict[str, int]] = None) -> int:
    """[edit:rec] the weighted cost of one alignment (sclite's weights unless ``costs`` is given)."""
    costs = SCLITE_COSTS if costs is None else costs
    return sum(costs[o] for o in ops)


def levenshtein_naive(ref: Sequence, hyp: Sequence) -> int:
    """[edit:levenshtein] the fewest substitutions, deletions and insertions, as the minimum over every
    alignment (no dynamic programme)."""
    return min(sum(o != "C" for o in ops) for ops in edit_alignments(ref, hyp))
