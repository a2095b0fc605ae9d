"""A5: the RNN transducer: the lattice's log-probabilities, the forward and backward recursions, the fused
gradient, FastEmit, and greedy decoding.

Handout: scratchasr/assignments/handouts/a5_rnnt.md. Equations: docs/equations/rnnt.md (loss) and
docs/equations/transducer.md ([transducer:greedy]); walkthrough: docs/walkthroughs/losses.md.

Each item is graded on its own:
* the recursions are checked against sums over every (partial) path through the submission's OWN
  lattice log-probabilities, so a wrong log-softmax costs the lattice item only;
* the gradient items build their cache with the solution's forward (``ctx.impl``); FastEmit is graded
  on the difference grad(lambda) - grad(0), which a mistake in the plain gradient leaves unchanged;
* greedy decoding drives a small transducer built by the solution through its step interface.
Every loss call forces ``backend="numpy"`` (the student copy has no Numba kernels for these functions).
"""

from __future__ import annotations

import itertools

import numpy as np

from ...testing import reference
from ..spec import Assignment, Item, Term

NP = {"backend": "numpy"}
LOSS = "losses.rnnt.rnnt_loss"
BACKWARD = "losses.rnnt.rnnt_loss_backward"


def _batch(rng, B=3, T=4, U=3, V=5, blank=0, scale=2.0):
    """Ragged batch: row 0 full, one row with more labels than frames (U > T), one with no labels."""
    x = scale * rng.standard_normal((B, T, U + 1, V))
    labels = [k for k in range(V) if k != blank]
    y = rng.choice(labels, size=(B, U))
    Tl = np.array([T, 2, T - 1][:B])
    Ul = np.array([U, U, 0][:B])
    return x, y, Tl, Ul


def _node(idx):
    b, t, u = idx[:3]
    return f"node (t={t}, u={u}) of utterance b={b}: frame {t} read, {u} labels emitted"


def _valid(Tl, Ul, T, U1):
    t = np.arange(T)[None, :, None] < Tl[:, None, None]
    u = np.arange(U1)[None, None, :] <= Ul[:, None, None]
    return t & u


def _paths(lb, le, t0, u0, n_blank, n_label):
    """log of the sum over every ordering of n_blank blanks and n_label labels from node (t0, u0)."""
    terms = []
    for slots in itertools.combinations(range(n_blank + n_label), n_label):
        t, u, s = t0, u0, 0.0
        for i in range(n_blank + n_label):
            if i in slots:
                s += le[t, u]
                u += 1
            else:
                s += lb[t, u]
                t += 1
        terms.append(s)
    return float(np.logaddexp.reduce(terms))


# ----------------------------------------------------------------------------------------- lattice

def _lattice_value(ctx, shift=0.0):
    x, y, Tl, Ul = _batch(ctx.rng, blank=2)
    _, cache = ctx.fn(LOSS)(x + shift, y, Tl, Ul, blank=2, reduction="none", **NP)
    m = _valid(Tl, Ul, 4, 4)
    for name in ("log_Z", "log_blank"):
        got = np.where(m, getattr(cache, name), 0.0) - (shift if name == "log_Z" else 0.0)
        ctx.compare(name, got, tol="sequence", axes=("b", "t", "u"), explain=_node, mask=m)
    emit_valid = m & (np.arange(4)[None, None, :] < Ul[:, None, None])
    ctx.compare("log_emit", np.where(emit_valid, cache.log_emit, 0.0), tol="sequence", axes=("b", "t", "u"),
                explain=_node, mask=emit_valid)


# ----------------------------------------------------------------------------------------- recursions

def _recursion(ctx, which, sizes=((4, 3), (2, 3), (3, 0))):
    """Every alpha (or beta) node and log P(y|x) against the sum over paths of the submission's lattice."""
    B = len(sizes)
    T, U = max(s[0] for s in sizes), max(s[1] for s in sizes)
    x, y, _, _ = _batch(ctx.rng, B=B, T=T, U=U, blank=1)
    Tl, Ul = np.array([s[0] for s in sizes]), np.array([s[1] for s in sizes])
    _, cache = ctx.fn(LOSS)(x, y, Tl, Ul, blank=1, reduction="none", **NP)
    for b in range(B):
        Tb, Ub = int(Tl[b]), int(Ul[b])
        lb, le = cache.log_blank[b], cache.log_emit[b]
        arr = cache.log_alpha[b] if which == "alpha" else cache.log_beta[b]
        for t in range(Tb):
            for u in range(Ub + 1):
                if which == "alpha":
                    want = _paths(lb, le, 0, 0, t, u)
                else:
                    want = _paths(lb, le, t, u, Tb - 1 - t, Ub - u) + lb[Tb - 1, Ub]
                if not np.isclose(arr[t, u], want, rtol=1e-9, atol=1e-12):
                    ctx.fail(f"log_{which}[b={b}, t={t}, u={u}] is not the log of the sum over every path "
                             f"{'from (0, 0) to' if which == 'alpha' else 'from'} node (t={t}, u={u}"
                             f"{'' if which == 'alpha' else ') to the final blank'}) of your own lattice "
                             f"log-probabilities (T={Tb}, U={Ub})",
                             hint="missing-term")
        col = 0 if which == "alpha" else 1
        want = _paths(lb, le, 0, 0, Tb - 1, Ub) + lb[Tb - 1, Ub]
        ctx.expect(np.isclose(cache.log_like[b, col], want, rtol=1e-9, atol=1e-12),
                   f"log_like[b={b}, {col}] is not log P(y|x) = the sum over every alignment of your "
                   f"lattice ({'[rnnt:loglik]' if which == 'alpha' else 'beta(0, 0)'})")


# ----------------------------------------------------------------------------------------- gradient

def _grad_inputs(ctx, lam=0.0, B=3):
    x, y, Tl, Ul = _batch(ctx.rng, B=B, blank=3, scale=1.5)
    loss, cache = ctx.impl(LOSS)(x, y, Tl, Ul, blank=3, reduction="none", fastemit_lambda=lam, **NP)
    return x, y, Tl, Ul, loss, cache


def _grad_value(ctx):
    x, y, Tl, Ul, loss, cache = _grad_inputs(ctx)
    d = ctx.fn(BACKWARD)(np.array([1.0, 0.5, 2.0]), cache)
    ctx.compare("dlogits", d, tol="sequence", axes=("b", "t", "u", "k"), explain=_node,
                mask=_valid(Tl, Ul, 4, 4)[..., None])


def _grad_brute(ctx):
    x, y, Tl, Ul, loss, cache = _grad_inputs(ctx, B=2)
    d = np.asarray(ctx.fn(BACKWARD)(np.ones(2), cache))
    for b in range(2):
        Tb, Ub = int(Tl[b]), int(Ul[b])
        _, want = reference.rnnt_brute_force_grad(x[b, :Tb, :Ub + 1], list(y[b, :Ub]), blank=3)
        ctx.expect(np.allclose(d[b, :Tb, :Ub + 1], want, rtol=1e-8, atol=1e-12),
                   f"dlogits[b={b}] differs from the gradient by enumeration of every alignment "
                   "(scratchasr.testing.reference.rnnt_brute_force_grad)")


def _grad_check(ctx):
    x, y, Tl, Ul = _batch(ctx.rng, B=2, T=3, U=2, V=4, blank=0, scale=1.5)
    ctx.gradcheck(lambda x: ctx.impl(LOSS)(x, y, Tl, Ul, reduction="sum", **NP), ctx.fn(BACKWARD), [x],
                  names=["logits"], rtol=1e-6, atol=1e-9, axes={"logits": ("b", "t", "u", "k")})


def _grad_invariants(ctx):
    x, y, Tl, Ul, loss, cache = _grad_inputs(ctx)
    d = np.asarray(ctx.fn(BACKWARD)(np.ones(3), cache))
    ctx.expect(np.allclose(d.sum(-1), 0.0, atol=1e-12), "dlogits does not sum to 0 over the vocabulary at "
               "every node (the log-softmax is invariant to adding a constant to a node's logits)",
               hint="missing-term")
    pad = ~_valid(Tl, Ul, 4, 4)
    ctx.expect(np.all(d[pad] == 0), "dlogits is not exactly 0 on padded nodes (t >= T_b or u > U_b)",
               hint="padding-leak")


# ----------------------------------------------------------------------------------------- FastEmit

def _fastemit_diff(ctx, lam):
    x, y, Tl, Ul, _, c0 = _grad_inputs(ctx)
    _, c1 = ctx.impl(LOSS)(x, y, Tl, Ul, blank=3, reduction="none", fastemit_lambda=lam, **NP)
    back = ctx.fn(BACKWARD)
    diff = np.asarray(back(np.ones(3), c1)) - np.asarray(back(np.ones(3), c0))
    ctx.compare("dfastemit", diff, name="dlogits(lambda) - dlogits(0)", tol="sequence",
                axes=("b", "t", "u", "k"), explain=_node)
    return x, y, Tl, Ul, diff


def _fastemit_brute(ctx):
    x, y, Tl, Ul, diff = _fastemit_diff(ctx, 0.5)
    for b in range(3):
        Tb, Ub = int(Tl[b]), int(Ul[b])
        xs, ys = x[b, :Tb, :Ub + 1], list(y[b, :Ub])
        want = (reference.rnnt_brute_force_grad(xs, ys, blank=3, fastemit_lambda=0.5)[1]
                - reference.rnnt_brute_force_grad(xs, ys, blank=3)[1])
        ctx.expect(np.allclose(diff[b, :Tb, :Ub + 1], want, rtol=1e-8, atol=1e-12),
                   f"the FastEmit term of utterance b={b} differs from the enumeration of every alignment: "
                   "only the label transitions are scaled by 1 + lambda, and the softmax term follows")


def _fastemit_last_row(ctx):
    x, y, Tl, Ul, diff = _fastemit_diff(ctx, 0.02)
    for b in range(3):
        ctx.expect(np.all(np.abs(diff[b, :, Ul[b]]) < 1e-15),
                   f"FastEmit changed the gradient at u = U_b (b={b}), where no label is left to emit")


# ----------------------------------------------------------------------------------------- greedy

def _model(ctx, V=4, blank_bias=0.0):
    models = ctx.module("models", solution=True)
    seed = int(ctx.rng.integers(100))
    m = models.build("transducer", input_dim=3, vocab_size=V, dtype=np.float64, seed=seed, hidden=4,
                     num_layers=1, pred_hidden=3, joint_dim=5)
    for p in m.parameters().values():
        p[...] *= 2.0
    m.joint_out.params["W"][...] *= 4.0          # peaked distributions: several labels per frame happen
    m.joint_out.params["b"][0] += blank_bias
    m.eval()
    return m


def _greedy_value(ctx):
    m = _model(ctx)
    f, f_len = m.encode(ctx.rng.standard_normal((3, 6, 3)), np.array([6, 4, 1]))
    hyps = ctx.fn("decode.transducer.greedy_search")(m, f, f_len, max_symbols_per_frame=3)
    flat = np.array([k for h in hyps for k in h] + [-1] + [len(h) for h in hyps])
    ctx.compare("tokens", flat, tol="exact", axes=("i",))


def _greedy_argmax_path(ctx):
    """Each emitted label (and each frame-ending blank) is the arg-max of P(k | t, prefix), read from the
    lattice of the hypothesis itself (scratchasr.testing.transducer_reference.lattice_log_probs)."""
    m = _model(ctx, blank_bias=-1.0)
    f, f_len = m.encode(ctx.rng.standard_normal((1, 5, 3)), np.array([5]))
    S = 2
    y = ctx.fn("decode.transducer.greedy_search")(m, f, f_len, max_symbols_per_frame=S)[0]
    lp = reference.lattice_log_probs(m, f[0], y)        # (T, U+1, V)
    u = 0
    for t in range(5):
        emitted = 0
        while True:
            k = int(np.argmax(lp[t, u]))
            if k == 0 or emitted == S:
                break
            if u >= len(y) or y[u] != k:
                ctx.fail(f"frame t={t} after {u} labels: the arg-max is label {k}, but your output "
                         f"{'ends there' if u >= len(y) else f'has {y[u]}'} [transducer:greedy]")
            u += 1
            emitted += 1
    ctx.expect(u == len(y), f"your output has {len(y)} labels but the arg-max path emits {u}")


def _greedy_batch(ctx):
    m = _model(ctx)
    feats = ctx.rng.standard_normal((3, 7, 3))
    f, f_len = m.encode(feats, np.array([7, 3, 5]))
    greedy = ctx.fn("decode.transducer.greedy_search")
    batched = greedy(m, f, f_len)
    for b in range(3):
        one = greedy(m, f[b:b + 1, :f_len[b]], f_len[b:b + 1])[0]
        ctx.expect(list(batched[b]) == list(one), f"utterance b={b} decoded in the ragged batch differs from "
                   "the same utterance decoded alone (padding frames must not be read)", hint="padding-leak")


def _greedy_cap(ctx):
    m = _model(ctx, blank_bias=-6.0)      # blank almost never wins: the cap decides
    f, f_len = m.encode(ctx.rng.standard_normal((1, 4, 3)), np.array([4]))
    for S in (1, 2):
        y = ctx.fn("decode.transducer.greedy_search")(m, f, f_len, max_symbols_per_frame=S)[0]
        ctx.expect(len(y) <= 4 * S, f"max_symbols_per_frame={S}: {len(y)} labels from 4 frames")
        ctx.compare(f"tokens S={S}", np.array(y + [-1]), tol="exact", axes=("i",))


ITEMS = [
    Item("lattice", 2, ("rnnt:log-softmax",), [
        Term("log Z, log blank, log y on a ragged batch (blank = 2, U > T)", _lattice_value),
        Term("logits shifted by +1000", lambda ctx: _lattice_value(ctx, shift=1000.0), public=False),
    ], "the (T, U+1) log-probabilities of blank and of the next label, normalised per node"),
    Item("alpha", 3, ("rnnt:alpha-rec", "rnnt:loglik"), [
        Term("every node = sum over paths from (0, 0)", lambda ctx: _recursion(ctx, "alpha")),
        Term("T = 1 and U = 0 edges", lambda ctx: _recursion(ctx, "alpha", ((1, 3), (3, 0), (1, 0))),
             public=False),
    ]),
    Item("beta", 2, ("rnnt:beta-rec",), [
        Term("every node = sum over paths to the end", lambda ctx: _recursion(ctx, "beta")),
        Term("T = 1 and U = 0 edges", lambda ctx: _recursion(ctx, "beta", ((1, 3), (3, 0), (1, 0))),
             public=False),
    ]),
    Item("fused-gradient", 3, ("rnnt:grad",), [
        Term("dlogits against the reference (ragged, dloss weights)", _grad_value),
        Term("equals the enumeration of every alignment", _grad_brute),
        Term("gradient check (float64)", _grad_check),
        Term("sums to 0 over the vocabulary, 0 on padding", _grad_invariants, public=False),
    ]),
    Item("fastemit", 2, ("rnnt:fastemit",), [
        Term("grad(lambda = 0.5) - grad(0) by enumeration", _fastemit_brute),
        Term("nothing changes at u = U_b", _fastemit_last_row, public=False),
    ]),
    Item("greedy", 2, ("transducer:greedy",), [
        Term("tokens of a ragged batch", _greedy_value),
        Term("the arg-max path of its own lattice", _greedy_argmax_path),
        Term("ragged batch = one by one", _greedy_batch, public=False),
        Term("max_symbols_per_frame caps the labels per frame", _greedy_cap, public=False),
    ]),
]

ASSIGNMENT = Assignment(
    id="A5", slug="a5_rnnt", title="RNN transducer: lattice, recursions, fused gradient, FastEmit, greedy",
    files=("losses/rnnt.py", "decode/transducer.py"),
    items=ITEMS, handout="a5_rnnt.md", docs=("walkthroughs/losses.md", "walkthroughs/decoding.md",
                                            "walkthroughs/decoding_measure.py"),
    kernels={"kernels/rnnt.py": {"rnnt_forward_kernel": "losses.rnnt._rnnt_forward_numpy",
                                 "rnnt_backward_kernel": "losses.rnnt._rnnt_backward_numpy"}},
    extras=("experiments/timit/transducer_blstm/config.py",),
    training="scratchasr train experiments/timit/transducer_blstm/config.py --data_dir=DATA --exp_dir=exp/a5 "
             "--hidden=96 --stack=3 --pred_hidden=64 --joint_dim=96 --lr=2e-3 --lr_halving=false "
             "--patience=30 --epochs=12 --max_minutes=20",
)
