"""A3: CTC: log-space alpha and beta, the fused gradient, Viterbi alignment, greedy and prefix beam decoding.

Handout: scratchasr/assignments/handouts/a3_ctc.md. Equations: docs/equations/ctc.md and
docs/equations/decoding.md. Every term calls the NumPy twin (``backend="numpy"``): the solution copy
has Numba kernels, the student copy runs the twins through kernel stubs.
"""

from __future__ import annotations

import math

import numpy as np

from ..spec import Assignment, Item, Term

NEG_INF = -np.inf


def _reference(ctx):
    """scratchasr.testing.reference: the grader's copy when the solution is installed."""
    return ctx.module("testing.reference", solution=True)


def _batch(rng, *, B=3, T=7, V=5, S=3, blank=0, repeats=False, ragged=True, nan_padding=False):
    """Logits (B, T, V) of scale ~2, feasible targets (B, S) without ``blank``, ragged lengths."""
    logits = rng.standard_normal((B, T, V)) * 2.0
    labels = np.array([v for v in range(V) if v != blank])
    targets = rng.choice(labels, size=(B, S))
    if repeats:
        targets[:, 1] = targets[:, 0]  # a repeated label: the blank between them is compulsory
    logit_lengths = np.full(B, T, dtype=np.int64)
    target_lengths = np.full(B, S, dtype=np.int64)
    if ragged and B > 1:
        logit_lengths[1:] = rng.integers(max(S + 2, T - 3), T, size=B - 1)
        target_lengths[1] = max(S - 1, 0)
    if nan_padding:
        for b in range(B):
            logits[b, logit_lengths[b]:] = np.nan
    return logits, targets, logit_lengths, target_lengths


def _explain_state(targets, blank):
    def explain(idx):
        b, s = idx[0], idx[-1]
        if s % 2 == 0:
            return f"state l'_{s} = blank ({blank}) (docs/notation.md: l' is the blank-extended target)"
        k = (s - 1) // 2
        return f"state l'_{s} = y_{k + 1} = label {int(targets[b, k])} (docs/notation.md: l' = ext)"
    return explain


def _loss(ctx, logits, targets, ll, tl, *, blank=0, reduction="none", solution=False, **kw):
    f = ctx.impl("losses.ctc.ctc_loss") if solution else ctx.fn("losses.ctc.ctc_loss")
    return f(logits, targets, ll, tl, blank=blank, reduction=reduction, backend="numpy", **kw)


# The classic-mistake variants are solution code: their body is an A3 region (blanked for students).

def _alpha_variant(logits, targets, ll, tl, blank, mode):
    """log_alpha (B, T, 2S+1) as a classic mistake computes it: ``mode`` "skip-rule" (the skip s-2 -> s
    also between two equal labels), "skip-rule/any" (also into blank states) or "no-skip" (never)."""
    # BEGIN ASSIGNMENT A3
    B, T, V = logits.shape
    N = 2 * targets.shape[1] + 1
    out = np.full((B, T, N), NEG_INF)
    for b in range(B):
        Tb, Sb = int(ll[b]), int(tl[b])
        if Tb == 0:
            continue
        x = logits[b, :Tb]
        lp = x - (x.max(1, keepdims=True) + np.log(np.exp(x - x.max(1, keepdims=True)).sum(1, keepdims=True)))
        ext = np.full(2 * Sb + 1, blank)
        ext[1::2] = targets[b, :Sb]
        n = ext.size
        a = np.full(n, NEG_INF)
        a[:min(n, 2)] = lp[0, ext[:min(n, 2)]]
        out[b, 0, :n] = a
        for t in range(1, Tb):
            new = np.full(n, NEG_INF)
            for s in range(n):
                terms = [a[s]] + ([a[s - 1]] if s >= 1 else [])
                if s >= 2 and ((mode == "skip-rule" and ext[s] != blank) or mode == "skip-rule/any"):
                    terms.append(a[s - 2])
                new[s] = np.logaddexp.reduce(terms) + lp[t, ext[s]]
            a = new
            out[b, t, :n] = a
    return out
    # END ASSIGNMENT


# ----------------------------------------------------------------------------------------- alpha

def _alpha_terms(ctx, **kw):
    blank = kw.get("blank", 0)
    logits, targets, ll, tl = _batch(ctx.rng, **kw)
    nll, cache = _loss(ctx, logits, targets, ll, tl, blank=blank)
    ctx.compare("nll", nll, tol="sequence", axes=("b",), name="loss (reduction='none')")
    mistakes = {m: (lambda m=m: _alpha_variant(logits, targets, ll, tl, blank, m))
                for m in ("skip-rule", "skip-rule/any", "no-skip")}
    ctx.compare("log_alpha", cache.log_alpha, tol="sequence", axes=("b", "t", "s"), name="log_alpha",
                explain=_explain_state(targets, blank), mistakes=mistakes)


def _alpha_brute(ctx):
    ref = _reference(ctx)
    logits, targets, ll, tl = _batch(ctx.rng, B=2, T=4, V=3, S=2, ragged=False)
    targets[1, 1] = targets[1, 0]
    nll, _ = _loss(ctx, logits, targets, ll, tl)
    for b in range(2):
        want = ref.ctc_brute_force_nll(logits[b], list(targets[b]), 0)
        ctx.expect(np.isclose(nll[b], want, rtol=1e-9, atol=1e-12),
                   f"loss[b={b}] differs from the sum over all {3 ** 4} frame paths that collapse to the "
                   f"target (brute force, T=4, V=3)", hint="skip-rule" if b == 1 else None)


def _alpha_infeasible(ctx):
    logits, targets, ll, tl = _batch(ctx.rng, B=3, T=6, V=4, S=3, repeats=True, ragged=False)
    ll[0] = 3  # 3 labels with a repeat need 4 frames
    ll[1] = 0  # no frames at all
    tl[2] = 0  # empty target
    nll, _ = _loss(ctx, logits, targets, ll, tl)
    nll = np.asarray(nll, dtype=np.float64)
    ctx.expect(np.isposinf(nll[0]), "loss[b=0]: T_b = 3 frames cannot align 3 labels with a repeat; "
               "expected inf")
    ctx.expect(np.isposinf(nll[1]), "loss[b=1]: no frames and a nonempty target; expected inf")
    ctx.compare("nll_empty", nll[2:], tol="sequence", axes=("b",), name="loss[b=2] (empty target)")


# ----------------------------------------------------------------------------------------- beta

def _beta_terms(ctx, **kw):
    blank = kw.get("blank", 0)
    logits, targets, ll, tl = _batch(ctx.rng, **kw)
    _, cache = _loss(ctx, logits, targets, ll, tl, blank=blank)
    ctx.compare("log_beta", cache.log_beta, tol="sequence", axes=("b", "t", "s"), name="log_beta",
                explain=_explain_state(targets, blank))
    ctx.compare("log_like_beta", np.asarray(cache.log_like)[:, 1], tol="sequence", axes=("b",),
                name="log_like[:, 1] (log p(y|x) from beta)")


def _beta_agreement(ctx):
    logits, targets, ll, tl = _batch(ctx.rng, T=8)
    _, mine = _loss(ctx, logits, targets, ll, tl)
    _, sol = _loss(ctx, logits, targets, ll, tl, solution=True)
    for b in range(logits.shape[0]):
        N = 2 * int(tl[b]) + 1
        for t in range(int(ll[b])):
            got = np.logaddexp.reduce(sol.log_alpha[b, t, :N] + mine.log_beta[b, t, :N])
            if not np.isclose(got, sol.log_like[b, 0], rtol=1e-9, atol=1e-9):
                ctx.fail(f"invariant: log sum_s alpha_t(s) beta_t(s) must equal log p(y|x) at every frame; "
                         f"it does not at b={b}, t={t} [ctc:beta-rec]")


# ----------------------------------------------------------------------------------------- gradient

def _grad_terms(ctx, reduction="sum", **kw):
    blank = kw.get("blank", 0)
    logits, targets, ll, tl = _batch(ctx.rng, **kw)
    loss, cache = _loss(ctx, logits, targets, ll, tl, blank=blank, reduction=reduction, solution=True)
    dloss = np.asarray(1.7) if reduction != "none" else ctx.rng.standard_normal(np.shape(loss))
    d = ctx.fn("losses.ctc.ctc_loss_backward")(dloss, cache)
    valid = np.arange(logits.shape[1])[None, :] < ll[:, None]
    ctx.compare("dlogits", np.nan_to_num(np.asarray(d, dtype=np.float64), nan=1e300), tol="sequence",
                axes=("b", "t", "v"), name="dlogits", mask=valid[..., None])


def _grad_check(ctx):
    logits, targets, ll, tl = _batch(ctx.rng, B=2, T=5, V=4, S=2)
    fwd = ctx.impl("losses.ctc.ctc_loss")
    bwd = ctx.fn("losses.ctc.ctc_loss_backward")
    ctx.gradcheck(lambda x: fwd(x, targets, ll, tl, reduction="none", backend="numpy"), bwd, [logits],
                  names=["logits"], rtol=1e-6, axes={"logits": ("b", "t", "v")})


def _grad_invariants(ctx):
    logits, targets, ll, tl = _batch(ctx.rng, nan_padding=True)
    _, cache = _loss(ctx, logits, targets, ll, tl, reduction="sum", solution=True)
    d = np.asarray(ctx.fn("losses.ctc.ctc_loss_backward")(np.asarray(1.0), cache), dtype=np.float64)
    valid = np.arange(logits.shape[1])[None, :] < ll[:, None]
    ctx.expect(np.all(d[~valid] == 0), "dlogits is not exactly 0 at padded frames t >= logit_lengths[b] "
               "(the padding holds NaN here)", hint="padding-leak")
    ctx.expect(np.allclose(d[valid].sum(-1), 0, atol=1e-10), "dlogits does not sum to 0 over the vocabulary "
               "at a valid frame (softmax and occupancy both sum to 1) [ctc:grad]", hint="missing-term")


def _grad_brute(ctx):
    ref = _reference(ctx)
    logits, targets, ll, tl = _batch(ctx.rng, B=1, T=4, V=3, S=2, ragged=False)
    _, cache = _loss(ctx, logits, targets, ll, tl, reduction="sum", solution=True)
    d = np.asarray(ctx.fn("losses.ctc.ctc_loss_backward")(np.asarray(1.0), cache), dtype=np.float64)
    _, want = ref.ctc_brute_force_grad(logits[0], list(targets[0]), 0)
    ctx.expect(np.allclose(d[0], want, rtol=1e-8, atol=1e-10), "dlogits differs from the gradient by "
               "enumeration of all 3^4 paths (brute force, T=4, V=3)")


def _grad_zero_infinity(ctx):
    logits, targets, ll, tl = _batch(ctx.rng, repeats=True, ragged=False)
    ll[0] = 2  # infeasible
    loss, cache = _loss(ctx, logits, targets, ll, tl, reduction="none", zero_infinity=True, solution=True)
    d = np.asarray(ctx.fn("losses.ctc.ctc_loss_backward")(np.ones(3), cache), dtype=np.float64)
    ctx.expect(np.all(d[0] == 0) and np.all(np.isfinite(d)), "an infeasible utterance with "
               "zero_infinity=True must get an all-zero gradient")
    ctx.compare("dlogits_feasible", d[1:], tol="sequence", axes=("b", "t", "v"), name="dlogits[1:]")


# ----------------------------------------------------------------------------------------- Viterbi

def _viterbi_terms(ctx, **kw):
    blank = kw.get("blank", 0)
    logits, targets, ll, tl = _batch(ctx.rng, **kw)
    al = ctx.fn("losses.ctc.ctc_align")(logits, targets, ll, tl, blank=blank)
    ctx.compare("log_prob", al.log_prob, tol="sequence", axes=("b",), name="log_prob (best path)")
    ctx.compare("states", al.states, tol="exact", axes=("b", "t"), name="states")
    ctx.compare("labels", al.labels, tol="exact", axes=("b", "t"), name="labels")


def _viterbi_brute(ctx):
    ref = _reference(ctx)
    logits, targets, ll, tl = _batch(ctx.rng, B=2, T=5, V=3, S=2, ragged=False)
    al = ctx.fn("losses.ctc.ctc_align")(logits, targets, ll, tl)
    for b in range(2):
        want = ref.ctc_brute_force_best_path(logits[b], list(targets[b]), 0)
        ctx.expect(np.isclose(al.log_prob[b], want, rtol=1e-9), f"log_prob[b={b}] differs from the best of "
                   f"all 3^5 paths (brute force) [ctc:viterbi]")
        lab = [int(v) for v in np.asarray(al.labels)[b]]
        ctx.expect(ref.ctc_collapse(lab, 0) == tuple(int(v) for v in targets[b]),
                   f"labels[b={b}] does not collapse to the target", hint="repeat-merge")


# ----------------------------------------------------------------------------------------- greedy

def _pad_ids(seqs, width=None):
    width = width or max([len(s) for s in seqs] + [1])
    out = np.full((len(seqs), width), -1, dtype=np.int64)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = s[:width]
    return out, np.array([len(s) for s in seqs])


def _greedy_terms(ctx, blank=0, nan_padding=False, peaky=False):
    logits, _, ll, _ = _batch(ctx.rng, B=4, T=12, V=4, blank=blank, nan_padding=nan_padding)
    if peaky:  # a label, a blank, the same label: must give the label twice
        logits[0, :3] = -5.0
        logits[0, 0, 1], logits[0, 1, blank], logits[0, 2, 1] = 5.0, 5.0, 5.0
    hyps = ctx.fn("decode.ctc.ctc_greedy_decode")(logits, ll, blank=blank)
    ids, n = _pad_ids([list(h) for h in hyps], width=12)
    ctx.compare("lengths", n, tol="exact", axes=("b",), name="len(hyp)")
    ctx.compare("ids", ids, tol="exact", axes=("b", "n"), name="hyp")


def _greedy_naive(ctx):
    ref = _reference(ctx)
    logits, _, ll, _ = _batch(ctx.rng, B=3, T=10, V=3)
    hyps = ctx.fn("decode.ctc.ctc_greedy_decode")(logits, ll)
    for b in range(3):
        ctx.expect(list(hyps[b]) == ref.ctc_greedy_naive(logits[b], int(ll[b]), 0),
                   f"hyp[b={b}] is not the collapsed frame-wise argmax", hint="repeat-merge")


# ----------------------------------------------------------------------------------------- prefix beam

def _log_softmax(x):
    m = x.max(-1, keepdims=True)
    return x - (m + np.log(np.exp(x - m).sum(-1, keepdims=True)))


def _beam_exact(ctx):
    ref = _reference(ctx)
    lp = _log_softmax(ctx.rng.standard_normal((4, 3)) * 1.5)
    hyps = ctx.fn("decode.ctc.ctc_prefix_beam_search_utterance")(lp, beam_size=1000, backend="numpy")
    exact = ref.ctc_labelling_log_probs(lp, 0)
    best = max(exact.items(), key=lambda kv: (kv[1], [-v for v in kv[0]]))[0]
    if not hyps:
        ctx.fail("the beam is empty")
    ctx.expect(tuple(hyps[0].tokens) == best, "with a beam that holds every prefix, the best hypothesis must "
               "be the most probable labelling (brute force over all 3^4 paths)")
    for h in hyps:
        want = exact.get(tuple(h.tokens), NEG_INF)
        if not math.isclose(h.ctc_log_prob, want, rel_tol=1e-9, abs_tol=1e-12):
            ctx.fail(f"ctc_log_prob of {tuple(h.tokens)} is not the exact log P(z|x) (sum over its paths) "
                     f"although nothing was pruned")
    ctx.expect(len(hyps) == len([v for v in exact.values() if v > NEG_INF]),
               "with an unbounded beam every possible labelling must be in the final beam")


def _beam_terms(ctx, blank=0, lm=False, uniform=False, beam=3):
    V = 4
    x = ctx.rng.standard_normal((6, V)) * 1.5
    if uniform:
        x = np.zeros((3, V))  # every frame uniform: exact ties, broken by [ctc-decode:ties]
    kw = {}
    if lm:
        BigramLM = ctx.module("decode.lm").BigramLM
        seqs = [list(ctx.rng.integers(1, V, size=4)) for _ in range(6)]
        kw = dict(lm=BigramLM.estimate(seqs, V, k=0.5), lm_weight=0.7, insertion_bonus=0.3)
    hyps = ctx.fn("decode.ctc.ctc_prefix_beam_search_utterance")(x, beam_size=beam, blank=blank, nbest=beam,
                                                                 backend="numpy", **kw)
    ids, n = _pad_ids([list(h.tokens) for h in hyps] or [[]], width=x.shape[0])
    ctx.compare("n_hyps", np.array([len(hyps)]), tol="exact", name="number of hypotheses")
    ctx.compare("tokens", ids, tol="exact", axes=("rank", "n"), name="hypothesis tokens")
    ctx.compare("scores", np.array([h.score for h in hyps]), tol="sequence", axes=("rank",), name="scores")


ITEMS = [
    Item("ctc-alpha", 4, ("ctc:alpha-init", "ctc:alpha-rec", "ctc:loglik"), [
        Term("loss and log_alpha, ragged batch", _alpha_terms),
        Term("brute force over all paths (T=4, V=3)", _alpha_brute),
        Term("repeated labels", lambda ctx: _alpha_terms(ctx, repeats=True), public=False),
        Term("blank = V - 1", lambda ctx: _alpha_terms(ctx, blank=4), public=False),
        Term("minimal T, no frames, empty target", _alpha_infeasible, public=False),
    ]),
    Item("ctc-beta", 3, ("ctc:beta-init", "ctc:beta-rec"), [
        Term("log_beta and log p(y|x) from beta, ragged batch", _beta_terms),
        Term("invariant: sum_s alpha_t(s) beta_t(s) = p(y|x) at every t", _beta_agreement),
        Term("repeated labels", lambda ctx: _beta_terms(ctx, repeats=True), public=False),
        Term("blank = 2", lambda ctx: _beta_terms(ctx, blank=2), public=False),
    ]),
    Item("ctc-gradient", 4, ("ctc:occupancy", "ctc:grad"), [
        Term("dlogits, reduction='sum'", _grad_terms),
        Term("gradient check (float64)", _grad_check),
        Term("sums to 0 over the vocabulary, exactly 0 on NaN padding", _grad_invariants),
        Term("brute force over all paths (T=4, V=3)", _grad_brute, public=False),
        Term("reduction='mean', repeated labels", lambda ctx: _grad_terms(ctx, "mean", repeats=True),
             public=False),
        Term("per-utterance dloss, blank = V - 1", lambda ctx: _grad_terms(ctx, "none", blank=4),
             public=False),
        Term("zero_infinity on an infeasible utterance", _grad_zero_infinity, public=False),
    ]),
    Item("ctc-viterbi", 2, ("ctc:viterbi",), [
        Term("best path, states and labels, ragged batch", _viterbi_terms),
        Term("brute force best path (T=5, V=3), collapses to the target", _viterbi_brute),
        Term("repeated labels, blank = 1", lambda ctx: _viterbi_terms(ctx, repeats=True, blank=1),
             public=False),
    ]),
    Item("ctc-greedy", 1, ("ctc-decode:greedy",), [
        Term("ragged batch", _greedy_terms),
        Term("against the naive collapse of the argmax", _greedy_naive),
        Term("label, blank, same label: the label twice", lambda ctx: _greedy_terms(ctx, peaky=True),
             public=False),
        Term("blank = 3, NaN padding", lambda ctx: _greedy_terms(ctx, blank=3, nan_padding=True),
             public=False),
    ]),
    Item("ctc-prefix-beam", 4, ("ctc-decode:prefix-init", "ctc-decode:prefix-blank",
                                "ctc-decode:prefix-repeat", "ctc-decode:prefix-extend"), [
        Term("an unbounded beam is exact (brute force, T=4, V=3)", _beam_exact),
        Term("beam 3: hypotheses and scores", _beam_terms),
        Term("uniform frames: ties broken by [ctc-decode:ties]",
             lambda ctx: _beam_terms(ctx, uniform=True, beam=5)),
        Term("blank = 2, beam 4", lambda ctx: _beam_terms(ctx, blank=2, beam=4), public=False),
        Term("bigram LM fusion and insertion bonus", lambda ctx: _beam_terms(ctx, lm=True), public=False),
    ]),
]

ASSIGNMENT = Assignment(
    id="A3", slug="a3_ctc", title="CTC: alpha/beta, fused gradient, Viterbi, greedy and prefix beam decoding",
    files=("losses/ctc.py", "decode/ctc.py"), items=ITEMS, handout="a3_ctc.md",
    docs=("walkthroughs/losses.md", "walkthroughs/decoding.md"),
    kernels={"kernels/ctc.py": {"ctc_forward_kernel": "losses.ctc._ctc_forward_numpy",
                                "ctc_backward_kernel": "losses.ctc._ctc_backward_numpy"},
             "kernels/ctc_decode.py": {"ctc_prefix_beam_search_kernel": None}},
    force_numpy=True,
    extras=("experiments/timit/ctc_blstm/config.py",),
    training="scratchasr train experiments/timit/ctc_blstm/config.py --data_dir=DATA --exp_dir=exp/a3 "
             "--hidden=96 --num_layers=1 --epochs=6 --dropout=0.0",
)
