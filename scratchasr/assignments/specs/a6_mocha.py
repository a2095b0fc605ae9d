"""A6: monotonic attention and MoChA: the expected-alignment recursion and its backward, chunkwise weights,
the parallel (cumulative-product) form and where it fails, and hard monotonic attention at test time.

Handout: scratchasr/assignments/handouts/a6_mocha.md. Equations: docs/equations/mocha.md; walkthrough:
docs/walkthroughs/mocha.md. Every call forces ``backend="numpy"`` (the student copy has no Numba kernels
for these functions). Backward items build their cache with the solution's forward (``ctx.impl``), so a
wrong forward costs points on the forward item only; the paper's triple sums come from
``scratchasr.testing.reference`` (``mocha_alpha_naive``, ``mocha_beta_naive``).
"""

from __future__ import annotations

import numpy as np

from ...testing import reference
from ..spec import Assignment, Item, Term

MOD = "ops.mocha."
NP = {"backend": "numpy"}


def _lengths(rng, B, T):
    lengths = rng.integers(1, T + 1, size=B)
    lengths[0] = T
    return lengths


def _valid(lengths, T):
    return np.arange(T)[None, :] < np.asarray(lengths)[:, None]


def _alignment_inputs(rng, B=3, T=7, nan_pad=False):
    """p in (0.05, 0.95), alpha_prev a sub-stochastic row (mass <= 1), ragged lengths."""
    lengths = _lengths(rng, B, T)
    p = rng.uniform(0.05, 0.95, size=(B, T))
    a = rng.dirichlet(np.ones(T), size=B) * rng.uniform(0.6, 1.0, size=(B, 1))
    if nan_pad:
        pad = ~_valid(lengths, T)
        p[pad], a[pad] = np.nan, np.nan
    return p, a, lengths


def _frame(idx):
    return f"frame j = {idx[-1]} of utterance b = {idx[0]}"


# ------------------------------------------------------------------------------- monotonic forward

def _mono_fwd_value(ctx):
    p, a, lengths = _alignment_inputs(ctx.rng)
    alpha, _ = ctx.fn(MOD + "monotonic_attention_forward")(p, a, lengths=lengths, **NP)
    ctx.compare("alpha", alpha, tol="sequence", axes=("b", "j"), explain=_frame, mask=_valid(lengths, 7))


def _mono_fwd_paper(ctx):
    p, a, lengths = _alignment_inputs(ctx.rng, B=2, T=6)
    alpha, _ = ctx.fn(MOD + "monotonic_attention_forward")(p, a, lengths=lengths, **NP)
    for b in range(2):
        want = reference.mocha_alpha_naive(p[b], a[b], lengths[b])
        ctx.expect(np.allclose(np.asarray(alpha)[b], want, rtol=1e-10, atol=1e-14),
                   f"alpha[b={b}] differs from the paper's sum [mocha:alpha-sum] "
                   "(scratchasr.testing.reference.mocha_alpha_naive)")


def _mono_fwd_padding(ctx):
    p, a, lengths = _alignment_inputs(ctx.rng, B=3, T=8, nan_pad=True)
    lengths[-1] = 0
    p[-1], a[-1] = np.nan, np.nan
    alpha, _ = ctx.fn(MOD + "monotonic_attention_forward")(p, a, lengths=lengths, **NP)
    alpha = np.asarray(alpha)
    ctx.expect(np.all(np.isfinite(alpha)), "alpha is not finite when NaN is written into the padding",
               hint="padding-leak")
    ctx.expect(np.all(alpha[~_valid(lengths, 8)] == 0), "alpha is not exactly 0 at padded frames",
               hint="padding-leak")
    ctx.compare("alpha", np.nan_to_num(alpha), tol="sequence", axes=("b", "j"), explain=_frame)


def _mono_fwd_mass(ctx):
    p, a, lengths = _alignment_inputs(ctx.rng, B=4, T=9)
    alpha, _ = ctx.fn(MOD + "monotonic_attention_forward")(p, a, lengths=lengths, **NP)
    alpha = np.asarray(alpha)
    for b in range(4):
        L = lengths[b]
        walked_off = sum(a[b, k] * np.prod(1 - p[b, k:L]) for k in range(L))  # never stopped
        ctx.expect(abs(alpha[b].sum() + walked_off - a[b, :L].sum()) < 1e-12,
                   f"mass is not conserved in utterance b = {b}: sum(alpha) + P(walk past the last frame) "
                   "must equal sum(alpha_prev) (alpha is not renormalised)")


# ------------------------------------------------------------------------------- monotonic backward

def _mono_bwd_value(ctx):
    p, a, lengths = _alignment_inputs(ctx.rng)
    alpha, cache = ctx.impl(MOD + "monotonic_attention_forward")(p, a, lengths=lengths, **NP)
    dp, da = ctx.fn(MOD + "monotonic_attention_backward")(ctx.rng.standard_normal(alpha.shape), cache)
    m = _valid(lengths, 7)
    ctx.compare("dp", dp, tol="sequence", axes=("b", "j"), explain=_frame, mask=m)
    ctx.compare("dalpha_prev", da, tol="sequence", axes=("b", "j"), explain=_frame, mask=m)


def _mono_gradcheck(ctx):
    p, a, lengths = _alignment_inputs(ctx.rng, B=2, T=6)
    ctx.gradcheck(lambda p, a: ctx.impl(MOD + "monotonic_attention_forward")(p, a, lengths=lengths, **NP),
                  ctx.fn(MOD + "monotonic_attention_backward"), [p, a], names=["p", "alpha_prev"],
                  rtol=1e-6, atol=1e-9, axes={"p": ("b", "j"), "alpha_prev": ("b", "j")})


def _mono_bwd_padding(ctx):
    p, a, lengths = _alignment_inputs(ctx.rng, B=3, T=8, nan_pad=True)
    alpha, cache = ctx.impl(MOD + "monotonic_attention_forward")(p, a, lengths=lengths, **NP)
    dalpha = ctx.rng.standard_normal(alpha.shape)
    dalpha[~_valid(lengths, 8)] = np.nan
    grads = ctx.fn(MOD + "monotonic_attention_backward")(dalpha, cache)
    pad = ~_valid(lengths, 8)
    for name, g in zip(("dp", "dalpha_prev"), grads):
        g = np.asarray(g)
        ctx.expect(np.all(np.isfinite(g)) and np.all(g[pad] == 0),
                   f"{name} is not exactly 0 (and finite) at padded frames with NaN in dalpha there",
                   hint="padding-leak")


# ------------------------------------------------------------------------------- chunkwise weights

def _chunk_inputs(rng, B=3, T=8, scale=3.0):
    lengths = _lengths(rng, B, T)
    alpha = rng.dirichlet(np.ones(T), size=B) * rng.uniform(0.5, 1.0, size=(B, 1))
    u = scale * rng.standard_normal((B, T))
    return alpha, u, lengths


def _chunk_fwd_value(ctx, w=3):
    alpha, u, lengths = _chunk_inputs(ctx.rng)
    beta, _ = ctx.fn(MOD + "mocha_chunk_forward")(alpha, u, chunk_size=w, lengths=lengths, **NP)
    ctx.compare("beta", beta, tol="sequence", axes=("b", "j"), explain=_frame, mask=_valid(lengths, 8))


def _chunk_fwd_paper(ctx):
    alpha, u, lengths = _chunk_inputs(ctx.rng, B=2, T=7)
    for w in (2, 4):
        beta, _ = ctx.fn(MOD + "mocha_chunk_forward")(alpha, u, chunk_size=w, lengths=lengths, **NP)
        for b in range(2):
            want = reference.mocha_beta_naive(alpha[b], u[b], w, lengths[b])
            ctx.expect(np.allclose(np.asarray(beta)[b], want, rtol=1e-10, atol=1e-14),
                       f"beta[b={b}] (chunk_size={w}) differs from the paper's double sum [mocha:beta-sum]")


def _chunk_fwd_extreme(ctx):
    alpha, u, lengths = _chunk_inputs(ctx.rng)
    u = u + np.where(ctx.rng.random(u.shape) < 0.5, 1000.0, -1000.0)  # exp overflows without a shift
    beta, _ = ctx.fn(MOD + "mocha_chunk_forward")(alpha, u, chunk_size=3, lengths=lengths, **NP)
    ctx.expect(np.all(np.isfinite(np.asarray(beta))), "beta is not finite for energies near +-1000: "
               "subtract each chunk's maximum before exp [mocha:chunk-max]", hint="nan")
    ctx.compare("beta", beta, tol="sequence", axes=("b", "j"), explain=_frame)


def _chunk_fwd_w1(ctx):
    alpha, u, lengths = _chunk_inputs(ctx.rng)
    beta, _ = ctx.fn(MOD + "mocha_chunk_forward")(alpha, u, chunk_size=1, lengths=lengths, **NP)
    want = np.where(_valid(lengths, 8), alpha, 0.0)
    ctx.expect(np.allclose(np.asarray(beta), want, rtol=1e-12, atol=0),
               "chunk_size=1 must return alpha exactly (a chunk of one frame)")


def _chunk_bwd_value(ctx):
    alpha, u, lengths = _chunk_inputs(ctx.rng)
    beta, cache = ctx.impl(MOD + "mocha_chunk_forward")(alpha, u, chunk_size=3, lengths=lengths, **NP)
    da, du = ctx.fn(MOD + "mocha_chunk_backward")(ctx.rng.standard_normal(beta.shape), cache)
    m = _valid(lengths, 8)
    ctx.compare("dalpha", da, tol="sequence", axes=("b", "j"), explain=_frame, mask=m)
    ctx.compare("du", du, tol="sequence", axes=("b", "j"), explain=_frame, mask=m)


def _chunk_gradcheck(ctx):
    alpha, u, lengths = _chunk_inputs(ctx.rng, B=2, T=6)
    fwd = ctx.impl(MOD + "mocha_chunk_forward")
    ctx.gradcheck(lambda a, u: fwd(a, u, chunk_size=3, lengths=lengths, **NP),
                  ctx.fn(MOD + "mocha_chunk_backward"), [alpha, u], names=["alpha", "u"], rtol=1e-6,
                  atol=1e-9, axes={"alpha": ("b", "j"), "u": ("b", "j")})


def _chunk_bwd_padding(ctx):
    alpha, u, lengths = _chunk_inputs(ctx.rng)
    lengths[-1] = 2
    beta, cache = ctx.impl(MOD + "mocha_chunk_forward")(alpha, u, chunk_size=3, lengths=lengths, **NP)
    dbeta = ctx.rng.standard_normal(beta.shape)
    pad = ~_valid(lengths, 8)
    dbeta[pad] = np.nan
    for name, g in zip(("dalpha", "du"), ctx.fn(MOD + "mocha_chunk_backward")(dbeta, cache)):
        g = np.asarray(g)
        ctx.expect(np.all(np.isfinite(g)) and np.all(g[pad] == 0),
                   f"{name} is not exactly 0 (and finite) at padded frames", hint="padding-leak")


# ------------------------------------------------------------------------------- parallel form

def _par_value(ctx):
    p, a, lengths = _alignment_inputs(ctx.rng, B=3, T=10)
    alpha, _ = ctx.fn(MOD + "monotonic_attention_forward")(p, a, mode="parallel", lengths=lengths, **NP)
    ctx.compare("alpha", alpha, tol="sequence", axes=("b", "j"), explain=_frame, mask=_valid(lengths, 10))


def _par_equals_recursion(ctx):
    p, a, lengths = _alignment_inputs(ctx.rng, B=3, T=10)
    par, _ = ctx.fn(MOD + "monotonic_attention_forward")(p, a, mode="parallel", lengths=lengths, **NP)
    rec, _ = ctx.impl(MOD + "monotonic_attention_forward")(p, a, lengths=lengths, **NP)
    ctx.expect(np.allclose(np.asarray(par), rec, rtol=1e-9, atol=1e-13),
               "for p in (0.05, 0.95) and 10 frames the parallel form must equal the exact recursion "
               "(the cumulative product is nowhere near DENOM_FLOOR)")


def _par_failing_regime(ctx):
    """p near 1 for 30 frames: prod (1 - p) underflows the floor, and the clipped form must say so exactly."""
    T = 40
    p = np.full((1, T), 0.7) + 0.05 * ctx.rng.random((1, T))
    a = np.zeros((1, T))
    a[0, 30] = 1.0
    alpha, _ = ctx.fn(MOD + "monotonic_attention_forward")(p, a, mode="parallel", **NP)
    ctx.compare("alpha", alpha, tol="sequence", axes=("b", "j"), explain=_frame)


# ------------------------------------------------------------------------------- hard attention

def _hard_value(ctx):
    B, T, w = 3, 9, 3
    lengths = _lengths(ctx.rng, B, T)
    e = 2.0 * ctx.rng.standard_normal((B, T))
    u = 2.0 * ctx.rng.standard_normal((B, T))
    t_prev = np.array([0, min(2, lengths[1] - 1), -1])
    beta, t = ctx.fn(MOD + "hard_monotonic_attention")(e, u, t_prev, chunk_size=w, lengths=lengths)
    ctx.compare("t", t, tol="exact", axes=("b",))
    ctx.compare("beta", beta, axes=("b", "j"), explain=_frame)


def _hard_streaming_equals_offline(ctx):
    """Decode 5 steps one at a time (streaming) and compare with the expected alignment of p = 1[e >= 0]
    (the p -> {0, 1} limit of [mocha:alpha-rec], computed offline by the solution)."""
    B, T, w = 2, 12, 2
    lengths = np.array([12, 9])
    t_prev = np.zeros(B, dtype=np.int64)
    alpha_prev = np.zeros((B, T))
    alpha_prev[:, 0] = 1.0
    for step in range(5):
        e = 1.5 * ctx.rng.standard_normal((B, T))
        u = 2.0 * ctx.rng.standard_normal((B, T))
        beta, t = ctx.fn(MOD + "hard_monotonic_attention")(e, u, t_prev, chunk_size=w, lengths=lengths)
        hard_p = (e >= 0).astype(np.float64)
        alpha, _ = ctx.impl(MOD + "monotonic_attention_forward")(hard_p, alpha_prev, lengths=lengths, **NP)
        want, _ = ctx.impl(MOD + "mocha_chunk_forward")(alpha, u, chunk_size=w, lengths=lengths, **NP)
        if not ctx.expect(np.allclose(np.asarray(beta), want, rtol=1e-12, atol=1e-15),
                          f"step {step}: the streamed hard weights differ from the offline expected "
                          "weights with p in {0, 1} [mocha:hard]"):
            return
        t_prev, alpha_prev = np.asarray(t), alpha


def _hard_stopped(ctx):
    e = -np.abs(ctx.rng.standard_normal((2, 6))) - 0.1  # nothing fires
    u = ctx.rng.standard_normal((2, 6))
    beta, t = ctx.fn(MOD + "hard_monotonic_attention")(e, u, np.array([0, -1]), chunk_size=2)
    ctx.expect(np.array_equal(np.asarray(t), [-1, -1]) and np.all(np.asarray(beta) == 0),
               "when no frame fires (and once attention has stopped, t_prev = -1), t must be -1 and beta 0")


ITEMS = [
    Item("monotonic-forward", 3, ("mocha:q-rec", "mocha:alpha-rec"), [
        Term("alpha on a ragged batch", _mono_fwd_value),
        Term("equals the paper's triple sum", _mono_fwd_paper, tags=("mocha:alpha-sum",)),
        Term("NaN in the padding, a zero-length row", _mono_fwd_padding, public=False),
        Term("mass conservation (no renormalisation)", _mono_fwd_mass, public=False),
    ], "the expected alignment by the O(T) reach-probability recursion"),
    Item("monotonic-backward", 3, ("mocha:dq-rec", "mocha:dp-rec"), [
        Term("dp, dalpha_prev against the reference", _mono_bwd_value),
        Term("gradient check (float64)", _mono_gradcheck),
        Term("padding: exactly 0, NaN-safe", _mono_bwd_padding, public=False),
    ]),
    Item("chunk-forward", 2, ("mocha:chunk-max", "mocha:chunk-softmax", "mocha:beta"), [
        Term("beta (chunk_size 3) on a ragged batch", _chunk_fwd_value),
        Term("equals the paper's double sum (chunk_size 2, 4)", _chunk_fwd_paper),
        Term("chunk_size 1 is alpha", _chunk_fwd_w1, public=False),
        Term("energies near +-1000", _chunk_fwd_extreme, public=False),
    ]),
    Item("chunk-backward", 2, ("mocha:dalpha-chunk", "mocha:du-chunk"), [
        Term("dalpha, du against the reference", _chunk_bwd_value),
        Term("gradient check (float64)", _chunk_gradcheck),
        Term("padding: exactly 0, NaN-safe", _chunk_bwd_padding, public=False),
    ]),
    Item("parallel-form", 2, ("mocha:safe-cumprod", "mocha:parallel"), [
        Term("alpha by cumulative products", _par_value),
        Term("equals the recursion where it is accurate", _par_equals_recursion),
        Term("the clipped denominator where it is not", _par_failing_regime, public=False),
    ]),
    Item("hard-attention", 2, ("mocha:hard", "mocha:hard-chunk"), [
        Term("attended frame and chunk weights", _hard_value),
        Term("streaming equals offline (p in {0, 1})", _hard_streaming_equals_offline),
        Term("nothing fires, stopped attention", _hard_stopped, public=False),
    ]),
]

ASSIGNMENT = Assignment(
    id="A6", slug="a6_mocha", title="Monotonic attention and MoChA",
    files=("ops/mocha.py",),
    items=ITEMS, handout="a6_mocha.md", docs=("walkthroughs/mocha.md", "walkthroughs/mocha_measure.py",
                                             "walkthroughs/attention.md"),
    kernels={"kernels/mocha.py": {
        "monotonic_recursive_forward_kernel": "ops.mocha._recursive_forward_numpy",
        "monotonic_recursive_backward_kernel": "ops.mocha._recursive_backward_numpy",
        "mocha_chunk_forward_kernel": "ops.mocha._chunk_forward_numpy",
        "mocha_chunk_backward_kernel": "ops.mocha._chunk_backward_numpy",
    }},
    extras=("experiments/timit/mocha/config.py", "experiments/timit/mocha/stream_eval.py"),
    training="scratchasr train experiments/timit/mocha/config.py --data_dir=DATA --exp_dir=exp/a6 "
             "--hidden=96 --num_layers=1 --att_dim=64 --embed_dim=32 --dropout=0.0 --batch_size=8 --lr=2e-3 "
             "--ctc_weight=0.3 --schedule=constant --patience=100 --epochs=10",
)
