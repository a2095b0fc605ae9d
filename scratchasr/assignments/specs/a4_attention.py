"""A4: attention. Masks, scaled dot-product attention with masks (forward and backward), location-aware
attention (one decoder step, forward and backward), and the step of a small Listen-Attend-Spell speller
with its backward through time.

Handout: scratchasr/assignments/handouts/a4_attention.md. Equations: docs/equations/attention.md and
docs/equations/attention_models.md ([las:*]); walkthrough: docs/walkthroughs/attention.md.

Items are graded independently:
* masks are built by the solution (``ctx.impl``) wherever another item needs one;
* backward items build their caches with the solution's forward;
* location-aware attention is graded with sigmoid smoothing ([attn:smooth]), so it never runs the
  submission's masked softmax (graded under sdpa-forward);
* the LAS items build a tiny LAS from the submission with the solution's attention ops patched into
  ``models.las``; the backward item also runs the solution's speller step, so it grades the backward
  through time against a correct forward.
"""

from __future__ import annotations

import inspect
import types

import numpy as np

from ...testing import reference
from ..spec import Assignment, Item, Term

ATT = "ops.attention."
LOC = "ops.additive_attention."


def _sdpa(ctx, solution=False):
    """``sdpa_forward`` of the submission (or the solution) on its readable NumPy path: where the op
    takes a ``backend`` (a fused Numba softmax), the grader asks for ``"numpy"``, so the caches and
    the backward run the code the student writes."""
    fn = ctx.impl(ATT + "sdpa_forward") if solution else ctx.fn(ATT + "sdpa_forward")
    if "backend" in inspect.signature(fn).parameters:
        return lambda q, k, v, mask=None: fn(q, k, v, mask, backend="numpy")
    return fn


def _bhq(idx):
    return f"batch b={idx[0]}, head h={idx[1]}, query i={idx[2]}"


# ----------------------------------------------------------------------------------------- masks

def _masks_value(ctx):
    causal = ctx.fn(ATT + "causal_mask")
    chunk = ctx.fn(ATT + "chunk_mask")
    ctx.compare("causal 5", causal(5), tol="exact", axes=("1", "1", "i", "j"), name="causal_mask(5)")
    ctx.compare("causal 3x5", causal(3, 5), tol="exact", axes=("1", "1", "i", "j"), name="causal_mask(3, 5)")
    ctx.compare("chunk 7/3", chunk(7, 3), tol="exact", axes=("1", "1", "i", "j"), name="chunk_mask(7, 3)")


def _masks_left(ctx):
    chunk = ctx.fn(ATT + "chunk_mask")
    for T, c, left in ((8, 2, 0), (8, 2, 1), (9, 4, 1)):
        ctx.compare(f"chunk {T}/{c}/{left}", chunk(T, c, left_chunks=left), tol="exact",
                    axes=("1", "1", "i", "j"), name=f"chunk_mask({T}, {c}, left_chunks={left})")


def _masks_no_future(ctx):
    m = np.asarray(ctx.fn(ATT + "chunk_mask")(10, 3))[0, 0]
    chunk_of = np.arange(10) // 3
    later = chunk_of[None, :] > chunk_of[:, None]
    ctx.expect(not np.any(m & later), "chunk_mask lets a frame see a later chunk (look-ahead in streaming)")
    ctx.expect(np.all(np.diag(m)), "chunk_mask must let every frame see itself")


# ----------------------------------------------------------------------------------------- SDPA

def _qkv(rng, B=2, H=2, Tq=4, Tk=5, d=3, dv=2, scale=1.5):
    return (scale * rng.standard_normal((B, H, Tq, d)), scale * rng.standard_normal((B, H, Tk, d)),
            rng.standard_normal((B, H, Tk, dv)))


def _mask(ctx, kind, B=2, H=2, Tq=4, Tk=5):
    padding, causal = ctx.impl(ATT + "padding_mask"), ctx.impl(ATT + "causal_mask")
    if kind == "none":
        return None
    if kind == "padding":
        return padding(np.array([Tk, 3]), Tk)
    if kind == "causal":
        return causal(Tq, Tk)
    m = np.broadcast_to(padding(np.array([Tk, 3]), Tk), (B, H, Tq, Tk)).copy()
    m[1, 0, 2] = False  # one query row with no allowed key
    return m


def _sdpa_value(ctx, kind):
    q, k, v = _qkv(ctx.rng)
    mask = _mask(ctx, kind)
    out, _ = _sdpa(ctx)(q, k, v, mask)
    ctx.compare("out", out, axes=("b", "h", "i", "e"), explain=_bhq)


def _sdpa_naive(ctx):
    q, k, v = _qkv(ctx.rng)
    for kind in ("padding", "causal"):
        mask = _mask(ctx, kind)
        out, _ = _sdpa(ctx)(q, k, v, mask)
        ctx.expect(np.allclose(np.asarray(out), reference.sdpa_naive(q, k, v, mask), rtol=1e-10, atol=1e-13),
                   f"sdpa_forward with a {kind} mask differs from the loop over queries and allowed keys "
                   "(scratchasr.testing.reference.sdpa_naive)")


def _sdpa_empty_row(ctx):
    q, k, v = _qkv(ctx.rng)
    mask = _mask(ctx, "empty")
    out = np.asarray(_sdpa(ctx)(q, k, v, mask)[0])
    ctx.expect(np.all(np.isfinite(out)), "a query row with no allowed key gives NaN/inf "
               "(define its weights, and its output, as 0 [attn:softmax])", hint="nan")
    ctx.expect(np.all(out[1, 0, 2] == 0), "a query row with no allowed key must give a zero output")
    ctx.compare("out", np.nan_to_num(out), axes=("b", "h", "i", "e"), explain=_bhq)


def _sdpa_large(ctx):
    q, k, v = _qkv(ctx.rng)
    q = q + np.array([60.0, 0, 0])
    k = k + np.array([60.0, 0, 0])  # scores near 2000: exp overflows without the row maximum
    out, _ = _sdpa(ctx)(q, k, v, _mask(ctx, "padding"))
    ctx.expect(np.all(np.isfinite(np.asarray(out))), "scores near 2000 give NaN/inf: subtract each row's "
               "maximum over its allowed keys before exp", hint="nan")
    ctx.compare("out", np.nan_to_num(np.asarray(out)), axes=("b", "h", "i", "e"), explain=_bhq)


def _sdpa_grads(ctx, kind):
    q, k, v = _qkv(ctx.rng)
    out, cache = _sdpa(ctx, solution=True)(q, k, v, _mask(ctx, kind))
    grads = ctx.fn(ATT + "sdpa_backward")(ctx.rng.standard_normal(out.shape), cache)
    for name, g in zip(("dq", "dk", "dv"), grads):
        ctx.compare(name, g, axes=("b", "h", "t", "e"))


def _sdpa_gradcheck(ctx):
    q, k, v = _qkv(ctx.rng, B=2, H=1, Tq=3, Tk=4)
    mask = _mask(ctx, "padding", H=1, Tq=3, Tk=4)
    fwd = _sdpa(ctx, solution=True)
    ctx.gradcheck(lambda q, k, v: fwd(q, k, v, mask), ctx.fn(ATT + "sdpa_backward"), [q, k, v],
                  names=["q", "k", "v"], rtol=1e-7, atol=1e-9,
                  axes={n: ("b", "h", "t", "e") for n in ("q", "k", "v")})


def _sdpa_masked_zero(ctx):
    q, k, v = _qkv(ctx.rng)
    v[1, :, 3:] = np.nan                       # padded values the forward never reads
    out, cache = _sdpa(ctx, solution=True)(q, k, v, _mask(ctx, "empty"))
    dq, dk, dv = (np.asarray(g) for g in ctx.fn(ATT + "sdpa_backward")(ctx.rng.standard_normal(out.shape),
                                                                        cache))
    ctx.expect(all(np.all(np.isfinite(g)) for g in (dq, dk, dv)), "NaN in padded values leaks into the "
               "gradients (the weights there are exactly 0)", hint="padding-leak")
    ctx.expect(np.all(dk[1, :, 3:] == 0) and np.all(dv[1, :, 3:] == 0), "masked keys and values must get "
               "exactly zero gradient", hint="padding-leak")
    ctx.expect(np.all(dq[1, 0, 2] == 0), "a query row with no allowed key must get zero gradient")


# ----------------------------------------------------------------------------------------- location-aware

B_, T_, DQ, A_, DV, C_, K_ = 2, 6, 3, 4, 3, 2, 3


def _loc_inputs(rng, lengths=(6, 4)):
    return [rng.standard_normal((B_, DQ)), rng.standard_normal((B_, T_, A_)),
            rng.standard_normal((B_, T_, DV)), rng.dirichlet(np.ones(T_), size=B_), np.array(lengths),
            0.7 * rng.standard_normal((A_, DQ)), rng.standard_normal(A_), rng.standard_normal((C_, K_)),
            rng.standard_normal((A_, C_))]


def _loc_value(ctx):
    inp = _loc_inputs(ctx.rng)
    ctx_, alpha, _ = ctx.fn(LOC + "location_attention_forward")(*inp, smoothing=True)
    ctx.compare("alpha", alpha, axes=("b", "j"))
    ctx.compare("context", ctx_, axes=("b", "e"))


def _loc_naive(ctx):
    inp = _loc_inputs(ctx.rng)
    c, alpha, _ = ctx.fn(LOC + "location_attention_forward")(*inp, smoothing=True)
    ref_c, ref_alpha = reference.location_attention_naive(*inp, smoothing=True)
    ctx.expect(np.allclose(np.asarray(alpha), ref_alpha, rtol=1e-10, atol=1e-14)
               and np.allclose(np.asarray(c), ref_c, rtol=1e-10, atol=1e-14),
               "location_attention_forward differs from the loops of "
               "scratchasr.testing.reference.location_attention_naive")


def _loc_padding(ctx):
    inp = _loc_inputs(ctx.rng)
    for i in (1, 2, 3):
        inp[i][1, 4:] = np.nan
    c, alpha, _ = ctx.fn(LOC + "location_attention_forward")(*inp, smoothing=True)
    c, alpha = np.asarray(c), np.asarray(alpha)
    ctx.expect(np.all(np.isfinite(c)) and np.all(np.isfinite(alpha)) and np.all(alpha[1, 4:] == 0),
               "NaN in padded keys/values/alpha_prev leaks, or alpha is not 0 past the length",
               hint="padding-leak")
    ctx.compare("context", np.nan_to_num(c), axes=("b", "e"))


def _loc_grads(ctx):
    inp = _loc_inputs(ctx.rng)
    c, alpha, cache = ctx.impl(LOC + "location_attention_forward")(*inp, smoothing=True)
    grads = ctx.fn(LOC + "location_attention_backward")(ctx.rng.standard_normal(c.shape), cache,
                                                        ctx.rng.standard_normal(alpha.shape))
    names = ("dquery", "dkeys", "dvalues", "dalpha_prev", "dW_q", "dw", "dF", "dU")
    if len(grads) != len(names):
        ctx.fail(f"location_attention_backward returned {len(grads)} gradients, expected {len(names)}: "
                 f"{names}")
    for n, g in zip(names, grads):
        ctx.compare(n, g, name=n)


def _loc_gradcheck(ctx):
    inp = _loc_inputs(ctx.rng)
    fwd = ctx.impl(LOC + "location_attention_forward")
    bwd = ctx.fn(LOC + "location_attention_backward")

    def f(*a):
        c, al, cache = fwd(*a, smoothing=True)
        return np.concatenate([c, al], axis=1), cache

    def b(d, cache):
        return bwd(d[:, :DV], cache, d[:, DV:])
    ctx.gradcheck(f, b, inp, names=["query", "keys", "values", "alpha_prev", "lengths", "W_q", "w", "F", "U"],
                  rtol=1e-6, atol=1e-9)


def _loc_bwd_padding(ctx):
    inp = _loc_inputs(ctx.rng)
    for i in (1, 2, 3):
        inp[i][1, 4:] = np.nan
    c, alpha, cache = ctx.impl(LOC + "location_attention_forward")(*inp, smoothing=True)
    grads = ctx.fn(LOC + "location_attention_backward")(ctx.rng.standard_normal(c.shape), cache,
                                                        ctx.rng.standard_normal(alpha.shape))
    ok = all(np.all(np.isfinite(np.asarray(g))) for g in grads)
    ok = ok and all(np.all(np.asarray(grads[i])[1, 4:] == 0) for i in (1, 2, 3))
    ctx.expect(ok, "keys, values and alpha_prev must get exactly zero (finite) gradient past the length",
               hint="padding-leak")


# ----------------------------------------------------------------------------------------- LAS speller

SMALL = dict(hidden=3, num_layers=1, pyramid=0, embed_dim=3, att_dim=3, conv_channels=2, conv_width=3)


def _las(ctx, solution_step=False, **kw):
    """A tiny LAS of the submission whose models.las uses the solution's attention ops (and, with
    ``solution_step``, the solution's speller step)."""
    sub_las = ctx.module("models.las")
    for name in ("location_attention_forward", "location_attention_backward"):
        setattr(sub_las, name, ctx.impl(LOC + name))
    models = ctx.module("models")
    opts = dict(SMALL)
    opts.update(kw)
    m = models.build("las", input_dim=3, vocab_size=5, dtype=np.float64, seed=int(ctx.rng.integers(100)),
                     **opts)
    for p in m.parameters().values():
        p[...] *= 2.0
    if solution_step:
        sol_las = ctx.module("models.las", solution=True)
        m.speller.one_step = types.MethodType(sol_las.Speller.one_step, m.speller)
    return m


def _las_batch(ctx, T=(5, 4), targets=([1, 2, 2], [4])):
    batch_mod = ctx.module("data.batch")
    return batch_mod.make_batch([ctx.rng.standard_normal((T[0], 3)), ctx.rng.standard_normal((T[1], 3))],
                                list(targets))


def _las_loss(ctx, **kw):
    m = _las(ctx, **kw)
    loss, _ = m.forward_loss(_las_batch(ctx))
    m.clear_caches()
    ctx.compare("loss", loss, axes=("b",), name="forward_loss")


def _las_decode(ctx):
    m = _las(ctx)
    m.eval()
    hyps = m.decode(_las_batch(ctx), method="greedy")
    ctx.compare("tokens", np.array([k for h in hyps for k in h] + [-1] + [len(h) for h in hyps]), tol="exact",
                axes=("i",))


def _las_grads(ctx, **kw):
    m = _las(ctx, solution_step=True, **kw)
    batch = _las_batch(ctx)
    m.zero_grad()
    m.forward_loss(batch)
    m.backward(np.array([1.0, 0.5]))
    G = m.gradients()
    for name in sorted(k for k in G if k.startswith("speller.")):
        ctx.compare(name, G[name], name=f"d{name}")


def _las_gradcheck(ctx):
    m = _las(ctx, solution_step=True, heads=2)
    testing = ctx.module("testing.model_check", solution=True)
    batch = _las_batch(ctx)
    report = testing.model_gradcheck(m, batch, feats=True)
    if not report.ok:
        ctx.fail("whole-model gradient check (float64, rtol 1e-5) failed:\n" + str(report))


ITEMS = [
    Item("masks", 1, ("attn:mask",), [
        Term("causal (square and Tq < Tk) and chunked masks", _masks_value),
        Term("chunked with limited left context", _masks_left, public=False),
        Term("no frame sees a later chunk", _masks_no_future),
    ]),
    Item("sdpa-forward", 3, ("attn:scores", "attn:softmax", "attn:out"), [
        Term("no mask", lambda ctx: _sdpa_value(ctx, "none")),
        Term("padding mask", lambda ctx: _sdpa_value(ctx, "padding")),
        Term("causal mask (Tq < Tk)", lambda ctx: _sdpa_value(ctx, "causal")),
        Term("equals the loop over allowed keys", _sdpa_naive),
        Term("a query row with no allowed key", _sdpa_empty_row, public=False),
        Term("scores near 2000", _sdpa_large, public=False),
    ]),
    Item("sdpa-backward", 3, ("attn:dout", "attn:dsoftmax", "attn:dscores"), [
        Term("dq, dk, dv (padding mask)", lambda ctx: _sdpa_grads(ctx, "padding")),
        Term("gradient check (float64)", _sdpa_gradcheck),
        Term("dq, dk, dv (causal mask)", lambda ctx: _sdpa_grads(ctx, "causal"), public=False),
        Term("masked keys and empty rows: exactly 0, NaN-safe", _sdpa_masked_zero, public=False),
    ]),
    Item("location-forward", 2,
         ("attn:location-conv", "attn:location-energy", "attn:smooth", "attn:context"), [
        Term("alpha and context (sigmoid smoothing, ragged)", _loc_value),
        Term("equals the loops of the reference", _loc_naive),
        Term("NaN in the padding", _loc_padding, public=False),
    ]),
    Item("location-backward", 3, ("attn:dcontext", "attn:dsmooth", "attn:dadditive", "attn:dlocation"), [
        Term("all eight gradients against the reference", _loc_grads),
        Term("gradient check (float64)", _loc_gradcheck),
        Term("padding: exactly 0, NaN-safe", _loc_bwd_padding, public=False),
    ]),
    Item("las-step", 2, ("las:speller-state", "las:attend", "las:output"), [
        Term("forward_loss of a tiny LAS", _las_loss),
        Term("two heads, two speller layers", lambda ctx: _las_loss(ctx, heads=2, speller_layers=2),
             public=False),
        Term("greedy decoding", _las_decode, public=False),
    ]),
    Item("las-backward", 3, ("las:dspeller",), [
        Term("speller gradients of a tiny LAS", _las_grads),
        Term("whole-model gradient check, two heads (float64)", _las_gradcheck),
        Term("two speller layers, smoothing", lambda ctx: _las_grads(ctx, speller_layers=2, smoothing=True),
             public=False),
    ]),
]

ASSIGNMENT = Assignment(
    id="A4", slug="a4_attention", title="Attention: masks, SDPA, location-aware attention, a small LAS",
    files=("ops/attention.py", "ops/additive_attention.py", "models/las.py"),
    items=ITEMS, handout="a4_attention.md",
    docs=("walkthroughs/attention.md", "walkthroughs/attention_measure.py", "walkthroughs/modules.md",
          "walkthroughs/modules_measure.py"),
    # kernels/attention.py (a fused masked-softmax kernel) is stubbed to its NumPy twins when present
    kernels={"kernels/attention.py": {
        "softmax_rows_kernel": "ops.attention._softmax_rows_numpy",
        "softmax_rows_backward_kernel": "ops.attention._softmax_rows_backward_numpy"}},
    force_numpy=True,  # no Numba compilation of the LSTM kernels in every graded copy
    extras=("experiments/timit/attention/las.py",),
    training="scratchasr train experiments/timit/attention/las.py --data_dir=DATA --exp_dir=exp/a4 "
             "--hidden=96 --num_layers=2 --epochs=8",
)
