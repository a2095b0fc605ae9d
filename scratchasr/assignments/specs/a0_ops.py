"""A0: the basic ops (linear, softmax and log-softmax, layer norm), forward and hand-derived backward.

Handout: scratchasr/assignments/handouts/a0_ops.md. Equations: docs/equations/ops.md.
Backward items build their cache with the solution's forward (``ctx.impl``), so a wrong forward costs
points on the forward item only.
"""

from __future__ import annotations

import numpy as np

from ..spec import Assignment, Item, Term


def _ragged(rng, B, T):
    lengths = rng.integers(1, T + 1, size=B)
    lengths[0] = T
    return lengths


def _mask(lengths, T):
    return (np.arange(T)[None, :] < lengths[:, None])


# ----------------------------------------------------------------------------------------- linear

def _lin_inputs(rng, B=3, T=5, D=4, n_out=3):
    return (rng.standard_normal((B, T, D)), rng.standard_normal((n_out, D)) * 0.5, rng.standard_normal(n_out))


def _linear_fwd_value(ctx):
    x, W, b = _lin_inputs(ctx.rng)
    y, _ = ctx.fn("ops.linear.linear_forward")(x, W, b)
    ctx.compare("y", y, axes=("b", "t", "o"), name="y")


def _linear_fwd_nobias(ctx):
    x, W, _ = _lin_inputs(ctx.rng)
    y, _ = ctx.fn("ops.linear.linear_forward")(x[0], W)  # (T, D), no bias
    ctx.compare("y", y, axes=("t", "o"), name="y")


def _linear_fwd_padding(ctx):
    x, W, b = _lin_inputs(ctx.rng, B=3, T=6)
    lengths = _ragged(ctx.rng, 3, 6)
    y, _ = ctx.fn("ops.linear.linear_forward")(x, W, b, lengths=lengths)
    m = _mask(lengths, 6)[..., None]
    ctx.compare("y", y, axes=("b", "t", "o"), name="y", mask=m)


def _linear_bwd(ctx, with_bias=True, lengths=False):
    x, W, b = _lin_inputs(ctx.rng)
    kw = {"lengths": _ragged(ctx.rng, x.shape[0], x.shape[1])} if lengths else {}
    y, cache = ctx.impl("ops.linear.linear_forward")(x, W, b if with_bias else None, **kw)
    dy = ctx.rng.standard_normal(y.shape)
    grads = ctx.fn("ops.linear.linear_backward")(dy, cache)
    names = ("dx", "dW", "db") if with_bias else ("dx", "dW")
    if len(grads) != len(names):
        ctx.fail(f"linear_backward returned {len(grads)} gradients, expected {len(names)} {names}")
    axes = {"dx": ("b", "t", "d"), "dW": ("o", "d"), "db": ("o",)}
    mask = _mask(kw["lengths"], x.shape[1])[..., None] if lengths else None
    for n, g in zip(names, grads):
        ctx.compare(n, g, axes=axes[n], name=n, mask=mask if n == "dx" else None)


def _linear_gradcheck(ctx):
    x, W, b = _lin_inputs(ctx.rng, B=2, T=3, D=3, n_out=2)
    ctx.gradcheck(ctx.impl("ops.linear.linear_forward"), ctx.fn("ops.linear.linear_backward"), [x, W, b],
                  names=["x", "W", "b"], rtol=1e-7, axes={"x": ("b", "t", "d"), "W": ("o", "d"), "b": ("o",)})


def _linear_bwd_padding(ctx):
    x, W, b = _lin_inputs(ctx.rng)
    lengths = _ragged(ctx.rng, x.shape[0], x.shape[1])
    lengths[-1] = 2
    y, cache = ctx.impl("ops.linear.linear_forward")(x, W, b, lengths=lengths)
    dx = ctx.fn("ops.linear.linear_backward")(ctx.rng.standard_normal(y.shape), cache)[0]
    pad = ~_mask(lengths, x.shape[1])
    ctx.expect(np.all(np.asarray(dx)[pad] == 0), "dx is not exactly 0 at padded frames t >= lengths[b]",
               hint="padding-leak")


# ----------------------------------------------------------------------------------------- softmax

def _sm_value(ctx):
    x = ctx.rng.standard_normal((3, 4, 6)) * 3
    y, _ = ctx.fn("ops.softmax.softmax_forward")(x, axis=-1)
    ctx.compare("y", y, axes=("b", "t", "v"), name="y")
    ly, _ = ctx.fn("ops.softmax.log_softmax_forward")(x, axis=1)
    ctx.compare("log_y", ly, axes=("b", "t", "v"), name="log_y (axis=1)")


def _sm_stable(ctx):
    x = ctx.rng.standard_normal((2, 5)) * 3 + np.array([[1000.0], [-1000.0]])
    ly, _ = ctx.fn("ops.softmax.log_softmax_forward")(x)
    ctx.expect(np.all(np.isfinite(ly)), "log_softmax of logits near +-1000 is not finite", hint="nan")
    ctx.compare("log_y", ly, axes=("b", "v"), name="log_y")


def _sm_bwd(ctx, log=False, axis=-1):
    op = "log_softmax" if log else "softmax"
    x = ctx.rng.standard_normal((3, 4, 5)) * 2
    y, cache = ctx.impl(f"ops.softmax.{op}_forward")(x, axis=axis)
    (dx,) = ctx.fn(f"ops.softmax.{op}_backward")(ctx.rng.standard_normal(y.shape), cache)
    ctx.compare("dx", dx, axes=("b", "t", "v"), name="dx")


def _sm_gradcheck(ctx, log=False):
    op = "log_softmax" if log else "softmax"
    x = ctx.rng.standard_normal((2, 3, 4)) * 2
    ctx.gradcheck(lambda x: ctx.impl(f"ops.softmax.{op}_forward")(x, axis=1),
                  ctx.fn(f"ops.softmax.{op}_backward"), [x], names=["x"], rtol=1e-7,
                  axes={"x": ("b", "t", "v")})


# ----------------------------------------------------------------------------------------- layer norm

def _ln_inputs(rng):
    return rng.standard_normal((3, 4, 6)) * 2 + 1, rng.standard_normal(6), rng.standard_normal(6)


def _ln_value(ctx):
    x, g, b = _ln_inputs(ctx.rng)
    y, _ = ctx.fn("ops.norm.layer_norm_forward")(x, g, b)
    ctx.compare("y", y, axes=("b", "t", "d"), name="y")


def _ln_eps(ctx):
    x, g, b = _ln_inputs(ctx.rng)
    x[0, 0] = 3.0 + 1e-4 * ctx.rng.standard_normal(6)  # tiny variance: eps matters
    y, _ = ctx.fn("ops.norm.layer_norm_forward")(x, g, b, eps=1e-3)
    ctx.compare("y", y, axes=("b", "t", "d"), name="y (eps=1e-3)")


def _ln_bwd(ctx):
    x, g, b = _ln_inputs(ctx.rng)
    y, cache = ctx.impl("ops.norm.layer_norm_forward")(x, g, b)
    grads = ctx.fn("ops.norm.layer_norm_backward")(ctx.rng.standard_normal(y.shape), cache)
    if len(grads) != 3:
        ctx.fail(f"layer_norm_backward returned {len(grads)} gradients, expected 3 (dx, dgamma, dbeta)")
    for n, gr, ax in zip(("dx", "dgamma", "dbeta"), grads, (("b", "t", "d"), ("d",), ("d",))):
        ctx.compare(n, gr, axes=ax, name=n)


def _ln_gradcheck(ctx):
    x, g, b = _ln_inputs(ctx.rng)
    ctx.gradcheck(ctx.impl("ops.norm.layer_norm_forward"), ctx.fn("ops.norm.layer_norm_backward"),
                  [x[:2, :2], g, b], names=["x", "gamma", "beta"], rtol=1e-6,
                  axes={"x": ("b", "t", "d"), "gamma": ("d",), "beta": ("d",)})


def _ln_sum_zero(ctx):
    x, g, b = _ln_inputs(ctx.rng)
    y, cache = ctx.impl("ops.norm.layer_norm_forward")(x, g, b)
    dx = np.asarray(ctx.fn("ops.norm.layer_norm_backward")(ctx.rng.standard_normal(y.shape), cache)[0])
    ctx.expect(np.allclose(dx.sum(-1), 0, atol=1e-10), "dx does not sum to zero over the normalised axis "
               "(shifting x by a constant does not change the output, so sum_d dx_d = 0)",
               hint="missing-term")


ITEMS = [
    Item("linear-forward", 2, ("ops:linear",), [
        Term("3-D input with bias", _linear_fwd_value),
        Term("2-D input without bias", _linear_fwd_nobias),
        Term("ragged batch: zeros at t >= lengths[b]", _linear_fwd_padding),
    ], "y = x W^T + b over the last axis"),
    Item("linear-backward", 3, ("ops:linear-back",), [
        Term("dx, dW, db against the reference", _linear_bwd),
        Term("without bias: (dx, dW)", lambda ctx: _linear_bwd(ctx, with_bias=False)),
        Term("gradient check (float64)", _linear_gradcheck),
        Term("ragged batch: dx exactly 0 on padding", _linear_bwd_padding, public=False),
        Term("ragged batch: dx, dW, db", lambda ctx: _linear_bwd(ctx, lengths=True), public=False),
    ]),
    Item("softmax-forward", 1, ("ops:log-softmax", "ops:softmax"), [
        Term("softmax and log-softmax values, any axis", _sm_value),
        Term("stable for logits near +-1000", _sm_stable, public=False),
    ]),
    Item("softmax-backward", 2, ("ops:softmax-back",), [
        Term("dx against the reference", _sm_bwd),
        Term("dx along axis 0", lambda ctx: _sm_bwd(ctx, axis=0), public=False),
        Term("gradient check (float64)", _sm_gradcheck),
    ]),
    Item("log-softmax-backward", 2, ("ops:log-softmax-back",), [
        Term("dx against the reference", lambda ctx: _sm_bwd(ctx, log=True)),
        Term("dx along axis 1", lambda ctx: _sm_bwd(ctx, log=True, axis=1), public=False),
        Term("gradient check (float64)", lambda ctx: _sm_gradcheck(ctx, log=True)),
    ]),
    Item("layer-norm-forward", 2, ("ops:layer-norm",), [
        Term("values", _ln_value),
        Term("near-constant row with eps=1e-3", _ln_eps, public=False),
    ]),
    Item("layer-norm-backward", 3, ("ops:layer-norm-back",), [
        Term("dx, dgamma, dbeta against the reference", _ln_bwd),
        Term("gradient check (float64)", _ln_gradcheck),
        Term("invariant: dx sums to 0 over the feature axis", _ln_sum_zero, public=False),
    ]),
]

ASSIGNMENT = Assignment(
    id="A0", slug="a0_ops", title="Basic ops: linear, softmax, layer norm",
    files=("ops/linear.py", "ops/softmax.py", "ops/norm.py"),
    items=ITEMS, handout="a0_ops.md", docs=("walkthroughs/ops.md",),
    extras=("experiments/timit/ctc_blstm/config.py",),
    training="scratchasr train experiments/timit/ctc_blstm/config.py --data_dir=DATA --exp_dir=exp/a0 "
             "--hidden=96 --num_layers=1 --epochs=6 --dropout=0.0",
)
