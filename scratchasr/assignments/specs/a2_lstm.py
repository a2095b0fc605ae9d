"""A2: the LSTM: cell forward and backward, the sequence loop with masking and the reverse direction, BPTT;
bonus: the Numba cell kernels (forward and backward), graded by parity with the NumPy twins.

Handout: scratchasr/assignments/handouts/a2_lstm.md. Equations: docs/equations/lstm.md.
Isolation: backward items build caches with the solution's forward (``ctx.impl``); the sequence items
run the student's loop with the solution's cell (``ctx.solution_inside``); the cell item also runs the
solution's loop with the student's cell (``ctx.swap``). Every call forces ``backend="numpy"``. The bonus
runs the student's kernels alone and inside the reference loop in place of the twins (``ctx.patched``);
its timing against the twin is feedback (``ctx.note``), never graded.
"""

from __future__ import annotations

import time

import numpy as np

from ..spec import WRITE_KERNEL, Assignment, Item, Term

CELL_F = "ops.lstm._cell_forward_numpy"
CELL_B = "ops.lstm._cell_backward_numpy"
KERNEL_F = "kernels.lstm.lstm_cell_forward_kernel"
KERNEL_B = "kernels.lstm.lstm_cell_backward_kernel"
FORWARD_TAGS = ("lstm:gates", "lstm:cell", "lstm:hidden", "lstm:mask")
BACKWARD_TAGS = ("lstm:dcell", "lstm:dgates", "lstm:dmask")


def _weights(rng, D, H, scale=0.6):
    return (
        rng.standard_normal((4 * H, D)) * scale,
        rng.standard_normal((4 * H, H)) * scale,
        rng.standard_normal(4 * H) * 0.3,
    )


def _seq(rng, B=3, T=6, D=4, H=3, nan_padding=False):
    x = rng.standard_normal((B, T, D))
    lengths = np.array([T] + [int(v) for v in rng.integers(1, T, size=B - 1)])
    if nan_padding:
        for b in range(B):
            x[b, lengths[b] :] = np.nan
    h0, c0 = rng.standard_normal((B, H)) * 0.5, rng.standard_normal((B, H)) * 0.5
    return (x, lengths, h0, c0) + _weights(rng, D, H)


def _explain_gate(H):
    names = ("i (input)", "f (forget)", "g (candidate)", "o (output)")

    def explain(idx):
        k = idx[-1]
        return f"gate block {names[k // H]}, unit {k % H} (gates are stacked i, f, g, o)"

    return explain


def _reference(ctx):
    return ctx.module("testing.reference", solution=True)


# ----------------------------------------------------------------------------------------- cell forward


def _cell_step(ctx):
    rng = ctx.rng
    B, D, H = 3, 4, 3
    x, h, c = rng.standard_normal((B, D)), rng.standard_normal((B, H)), rng.standard_normal((B, H))
    W_ih, W_hh, b = _weights(rng, D, H)
    h1, c1, cache = ctx.fn("ops.lstm.lstm_step_forward")(x, h, c, W_ih, W_hh, b, backend="numpy")
    ctx.compare("h", h1, tol="sequence", axes=("b", "j"), name="h (lstm_step_forward)")
    ctx.compare("c", c1, tol="sequence", axes=("b", "j"), name="c (lstm_step_forward)")
    ctx.compare(
        "gates", cache.gates, tol="sequence", axes=("b", "k"), name="cache.gates", explain=_explain_gate(H)
    )


def _cell_mask(ctx):
    rng = ctx.rng
    B, H = 4, 3
    t = np.tanh(rng.standard_normal((B, 4 * H)))
    valid = np.array([1, 0, 1, 0], np.uint8)
    t[valid == 0] = np.nan  # padded rows are never read
    h_prev, c_prev = rng.standard_normal((B, H)), rng.standard_normal((B, H))
    gates, h, c, tanh_c, y = (np.full(s, 7.0) for s in ((B, 4 * H), (B, H), (B, H), (B, H), (B, H)))
    ctx.fn(CELL_F)(t, h_prev, c_prev, valid, gates, h, c, tanh_c, y)
    pad = valid == 0
    ctx.expect(
        np.array_equal(h[pad], h_prev[pad]) and np.array_equal(c[pad], c_prev[pad]),
        "at a padded step (valid = 0) h and c must carry the previous state unchanged",
        hint="state-carry",
    )
    ctx.expect(
        np.all(y[pad] == 0) and np.all(gates[pad] == 0) and np.all(tanh_c[pad] == 0),
        "at a padded step the output y, the gates and tanh(c) must be exactly 0 (no NaN)",
        hint="padding-leak",
    )
    for name, arr in (("h", h), ("c", c), ("y", y), ("gates", gates)):
        ctx.compare(name, arr, tol="sequence", axes=("b", "j"), name=f"{name} (cell, valid = [1, 0, 1, 0])")


def _cell_in_solution_loop(ctx, reverse=False):
    x, lengths, h0, c0, W_ih, W_hh, b = _seq(ctx.rng)
    with ctx.swap(CELL_F):
        y, (h_n, c_n), _ = ctx.impl("ops.lstm.lstm_forward")(
            x, lengths, h0, c0, W_ih, W_hh, b, reverse=reverse, backend="numpy"
        )
    y_ref, h_ref, c_ref = _reference(ctx).lstm_naive(x, lengths, h0, c0, W_ih, W_hh, b, reverse=reverse)
    ctx.expect(
        np.allclose(y, y_ref, rtol=1e-9, atol=1e-12)
        and np.allclose(h_n, h_ref, rtol=1e-9, atol=1e-12)
        and np.allclose(c_n, c_ref, rtol=1e-9, atol=1e-12),
        "the reference loop with your cell differs from the naive LSTM (one sequence, one step at a time)",
        hint="gate-order",
    )


# ----------------------------------------------------------------------------------------- sequence forward


def _seq_forward(ctx, reverse=False, nan_padding=False):
    x, lengths, h0, c0, W_ih, W_hh, b = _seq(ctx.rng, nan_padding=nan_padding)
    with ctx.solution_inside(CELL_F):
        y, (h_n, c_n), cache = ctx.fn("ops.lstm.lstm_forward")(
            x, lengths, h0, c0, W_ih, W_hh, b, reverse=reverse, backend="numpy"
        )
    valid = np.arange(x.shape[1])[None, :] < lengths[:, None]
    ctx.compare("y", y, tol="sequence", axes=("b", "t", "j"), name="h (outputs)", mask=valid[..., None])
    ctx.compare("h_n", h_n, tol="sequence", axes=("b", "j"), name="h_n")
    ctx.compare("c_n", c_n, tol="sequence", axes=("b", "j"), name="c_n")
    ctx.compare(
        "hprev", cache.hprev, tol="sequence", axes=("t", "b", "j"), name="cache.hprev (state entering t)"
    )


def _seq_naive(ctx, reverse):
    x, lengths, h0, c0, W_ih, W_hh, b = _seq(ctx.rng)
    with ctx.solution_inside(CELL_F):
        y, (h_n, c_n), _ = ctx.fn("ops.lstm.lstm_forward")(
            x, lengths, h0, c0, W_ih, W_hh, b, reverse=reverse, backend="numpy"
        )
    y_ref, h_ref, c_ref = _reference(ctx).lstm_naive(x, lengths, h0, c0, W_ih, W_hh, b, reverse=reverse)
    ok = all(np.allclose(a, r, rtol=1e-9, atol=1e-12) for a, r in ((y, y_ref), (h_n, h_ref), (c_n, c_ref)))
    ctx.expect(
        ok,
        f"lstm_forward(reverse={reverse}) differs from the naive LSTM (one sequence at a time)",
        hint="reverse" if reverse else "state-carry",
    )


# ----------------------------------------------------------------------------------------- cell backward


def _step_inputs(rng, B=3, D=4, H=3):
    return (rng.standard_normal((B, D)), rng.standard_normal((B, H)), rng.standard_normal((B, H))) + _weights(
        rng, D, H
    )


def _cell_backward(ctx):
    x, h, c, W_ih, W_hh, b = _step_inputs(ctx.rng)
    h1, c1, cache = ctx.impl("ops.lstm.lstm_step_forward")(x, h, c, W_ih, W_hh, b, backend="numpy")
    dh, dc = ctx.rng.standard_normal(h1.shape), ctx.rng.standard_normal(c1.shape)
    grads = ctx.fn("ops.lstm.lstm_step_backward")(dh, dc, cache)
    names = ("dx", "dh_prev", "dc_prev", "dW_ih", "dW_hh", "db")
    axes = (("b", "d"), ("b", "j"), ("b", "j"), ("k", "d"), ("k", "j"), ("k",))
    for n, g, ax in zip(names, grads, axes):
        ctx.compare(
            n,
            g,
            tol="sequence",
            axes=ax,
            name=n,
            explain=_explain_gate(3) if n in ("dW_ih", "dW_hh", "db") else None,
        )


def _cell_gradcheck(ctx, through="h"):
    x, h, c, W_ih, W_hh, b = _step_inputs(ctx.rng, B=2, D=3, H=2)
    fwd = ctx.impl("ops.lstm.lstm_step_forward")
    bwd = ctx.fn("ops.lstm.lstm_step_backward")
    if through == "h":
        f = lambda *a: fwd(*a, backend="numpy")  # noqa: E731  (h, c, cache): h is checked
        g = lambda dout, cache: bwd(dout, None, cache)  # noqa: E731
    else:
        f = lambda *a: fwd(*a, backend="numpy")[1:]  # noqa: E731  (c, cache): c is checked
        g = lambda dout, cache: bwd(np.zeros_like(dout), dout, cache)  # noqa: E731
    ctx.gradcheck(
        f,
        g,
        [x, h, c, W_ih, W_hh, b],
        names=["x", "h_prev", "c_prev", "W_ih", "W_hh", "b"],
        rtol=1e-6,
        axes={"W_ih": ("k", "d"), "W_hh": ("k", "j"), "b": ("k",)},
    )


def _cell_backward_mask(ctx):
    rng = ctx.rng
    B, H = 3, 2
    valid = np.array([1, 0, 1], np.uint8)
    gates = np.where(valid[:, None] == 1, rng.uniform(0.1, 0.9, (B, 4 * H)), 0.0)
    tanh_c = np.where(valid[:, None] == 1, np.tanh(rng.standard_normal((B, H))), 0.0)
    dy, dh_next, dc_next, c_prev = (rng.standard_normal((B, H)) for _ in range(4))
    da, dc_prev, dh_pass = np.full((B, 4 * H), 7.0), np.full((B, H), 7.0), np.full((B, H), 7.0)
    ctx.fn(CELL_B)(dy, dh_next, dc_next, gates, c_prev, tanh_c, valid, da, dc_prev, dh_pass)
    ctx.expect(
        np.all(da[1] == 0), "at a padded step the gate gradients da must be exactly 0", hint="padding-leak"
    )
    ctx.expect(
        np.array_equal(dc_prev[1], dc_next[1]) and np.array_equal(dh_pass[1], dh_next[1]),
        "at a padded step the carried gradients pass through unchanged (dc_prev = dc_next, "
        "dh_pass = dh_next) [lstm:dmask]",
        hint="state-carry",
    )
    ctx.compare("da", da, tol="sequence", axes=("b", "k"), name="da", explain=_explain_gate(H))


# ----------------------------------------------------------------------------------------- BPTT


def _bptt(ctx, reverse=False, final_grads=False, nan_padding=False):
    x, lengths, h0, c0, W_ih, W_hh, b = _seq(ctx.rng, nan_padding=nan_padding)
    y, (h_n, _), cache = ctx.impl("ops.lstm.lstm_forward")(
        x, lengths, h0, c0, W_ih, W_hh, b, reverse=reverse, backend="numpy"
    )
    dh = ctx.rng.standard_normal(y.shape)
    extra = (ctx.rng.standard_normal(h_n.shape), ctx.rng.standard_normal(h_n.shape)) if final_grads else ()
    with ctx.solution_inside(CELL_B):
        grads = ctx.fn("ops.lstm.lstm_backward")(dh, cache, *extra)
    names = ("dx", "dh0", "dc0", "dW_ih", "dW_hh", "db")
    axes = (("b", "t", "d"), ("b", "j"), ("b", "j"), ("k", "d"), ("k", "j"), ("k",))
    valid = np.arange(x.shape[1])[None, :] < lengths[:, None]
    for n, g, ax in zip(names, grads, axes):
        ctx.compare(n, g, tol="sequence", axes=ax, name=n, mask=valid[..., None] if n == "dx" else None)
    if nan_padding:
        ctx.expect(
            np.all(np.asarray(grads[0])[~valid] == 0),
            "dx must be exactly 0 at padded steps",
            hint="padding-leak",
        )


def _bptt_gradcheck(ctx, reverse=False):
    rng = ctx.rng
    x, lengths, h0, c0, W_ih, W_hh, b = _seq(rng, B=2, T=4, D=3, H=2)
    fwd = ctx.impl("ops.lstm.lstm_forward")
    bwd = ctx.fn("ops.lstm.lstm_backward")
    with ctx.solution_inside(CELL_B):
        ctx.gradcheck(
            lambda x, h0, c0, W_ih, W_hh, b: fwd(
                x, lengths, h0, c0, W_ih, W_hh, b, reverse=reverse, backend="numpy"
            ),
            bwd,
            [x, h0, c0, W_ih, W_hh, b],
            names=["x", "h0", "c0", "W_ih", "W_hh", "b"],
            rtol=1e-6,
            axes={"x": ("b", "t", "d"), "W_ih": ("k", "d"), "W_hh": ("k", "j"), "b": ("k",)},
        )


# ----------------------------------------------------------------------------------------- bonus: the kernels
# Parity with the NumPy twin as the kernels' parity tests have it (float64 1e-10 relative, float32 1e-5),
# and against the references recorded from the solution.

PARITY = {np.float64: (1e-10, 1e-12), np.float32: (1e-5, 1e-6)}


def _valid(B):
    return np.array([1, 0, 1, 1, 0] * (B // 5 + 1), np.uint8)[:B]  # rows 1, 4, 6, ... are padded steps


def _kernel_forward_inputs(rng, dtype, B=5, H=4):
    """t, h_prev, c_prev, valid of ``lstm_cell_forward_kernel``; NaN in the padded rows of t."""
    valid = _valid(B)
    t = np.tanh(rng.standard_normal((B, 4 * H)) * 1.5).astype(dtype)
    t[valid == 0] = np.nan  # padded rows are never read
    return (t,) + tuple(rng.standard_normal((B, H)).astype(dtype) for _ in range(2)) + (valid,)


def _kernel_backward_inputs(rng, dtype, B=5, H=4):
    """dy, dh_next, dc_next, gates, c_prev, tanh_c, valid of ``lstm_cell_backward_kernel``."""
    valid = _valid(B)
    on = valid[:, None] == 1
    gates = np.where(on, rng.uniform(0.05, 0.95, (B, 4 * H)), 0.0)
    gates[:, 2 * H:3 * H] = np.where(on, 2 * gates[:, 2 * H:3 * H] - 1, 0.0)  # g = tanh(.) in (-1, 1)
    tanh_c = np.where(on, np.tanh(rng.standard_normal((B, H))), 0.0)
    dy, dh_next, dc_next, c_prev = (rng.standard_normal((B, H)) for _ in range(4))
    return tuple(a.astype(dtype) for a in (dy, dh_next, dc_next, gates, c_prev, tanh_c)) + (valid,)


def _outputs(shapes, dtype):
    return tuple(np.full(s, 7.0, dtype) for s in shapes)  # 7: an output the kernel forgot to write shows


FORWARD_OUT = (("gates", ("b", "k")), ("h", ("b", "j")), ("c", ("b", "j")), ("tanh_c", ("b", "j")),
               ("y", ("b", "j")))
BACKWARD_OUT = (("da", ("b", "k")), ("dc_prev", ("b", "j")), ("dh_pass", ("b", "j")))


def _forward_shapes(ins):
    B, H = ins[1].shape
    return ((B, 4 * H),) + ((B, H),) * 4


def _backward_shapes(ins):
    B, H = ins[0].shape
    return ((B, 4 * H),) + ((B, H),) * 2


def _kernel_step(ctx, direction, dtype=np.float64):
    """One call of the student's kernel against the NumPy twin (parity) and the recorded reference."""
    if direction == "forward":
        kernel, twin, make, shapes, out = (ctx.fn(KERNEL_F), ctx.impl(CELL_F), _kernel_forward_inputs,
                                           _forward_shapes, FORWARD_OUT)
    else:
        kernel, twin, make, shapes, out = (ctx.fn(KERNEL_B), ctx.impl(CELL_B), _kernel_backward_inputs,
                                           _backward_shapes, BACKWARD_OUT)
    ins = make(ctx.rng, dtype)
    got, want = _outputs(shapes(ins), dtype), _outputs(shapes(ins), dtype)
    kernel(*ins, *got)
    twin(*ins, *want)
    rtol, atol = PARITY[dtype]
    what = f"lstm_cell_{direction}_kernel ({np.dtype(dtype).name}, valid = {ins[-1].tolist()})"
    for (n, ax), g, w in zip(out, got, want):
        with np.errstate(invalid="ignore"):
            wrong = ~np.isclose(g.astype(np.float64), w.astype(np.float64), rtol=rtol, atol=atol)
        if wrong.any():
            first = ", ".join(f"{a}={int(i)}" for a, i in zip(ax, np.argwhere(wrong)[0]))
            ctx.expect(False, f"{what}: {n}[{first}] differs from the NumPy twin ({int(wrong.sum())} of "
                              f"{wrong.size} entries beyond {rtol:g} relative)",
                       hint=None if np.isfinite(g).all() else "padding-leak")
        if dtype == np.float64:
            ctx.compare(n, g, tol="smooth", axes=ax, name=f"{n} ({what})",
                        explain=_explain_gate(got[1].shape[1]) if ax[-1] == "k" else None)
    if ctx.mode == "grade" and not ctx.failures and direction == "forward" and dtype == np.float64:
        rng = np.random.default_rng(0)
        ins = make(rng, np.float32, B=16, H=256)
        times = []
        for f in (kernel, twin):  # median of 30 calls after a warm-up call; reported, never graded
            outs = _outputs(shapes(ins), np.float32)
            f(*ins, *outs)
            ts = []
            for _ in range(30):
                t0 = time.perf_counter()
                f(*ins, *outs)
                ts.append(time.perf_counter() - t0)
            times.append(float(np.median(ts)))
        ctx.note(f"timing, one step at B=16, H=256, float32: your kernel {times[0] * 1e6:.0f} us, the NumPy "
                 f"twin {times[1] * 1e6:.0f} us ({times[1] / max(times[0], 1e-12):.1f}x)")


def _kernel_in_loop(ctx):
    """The reference ``lstm_forward`` (NumPy loop) with the student's forward kernel as its cell; ragged
    batch with NaN in the padding, both directions."""
    fwd = ctx.impl("ops.lstm.lstm_forward")
    for reverse in (False, True):
        x, lengths, h0, c0, W_ih, W_hh, b = _seq(ctx.rng, B=4, T=7, nan_padding=True)
        with ctx.patched(CELL_F, ctx.fn(KERNEL_F)):
            y, (h_n, c_n), _ = fwd(x, lengths, h0, c0, W_ih, W_hh, b, reverse=reverse, backend="numpy")
        valid = np.arange(x.shape[1])[None, :] < lengths[:, None]
        d = "reverse" if reverse else "forward"
        ctx.expect(np.all(y[~valid] == 0), f"{d}: outputs at padded steps must be exactly 0 (NaN there)",
                   hint="padding-leak")
        ctx.compare(f"y_{d}", y, tol="sequence", axes=("b", "t", "j"), name=f"h (outputs, {d})",
                    mask=valid[..., None])
        ctx.compare(f"h_n_{d}", h_n, tol="sequence", axes=("b", "j"), name=f"h_n ({d})")
        ctx.compare(f"c_n_{d}", c_n, tol="sequence", axes=("b", "j"), name=f"c_n ({d})")


def _kernel_in_bptt(ctx):
    """The reference ``lstm_backward`` with the student's backward kernel as its cell (the cache from the
    reference forward); ragged batch with NaN in the padding, both directions, final-state gradients."""
    fwd, bwd = ctx.impl("ops.lstm.lstm_forward"), ctx.impl("ops.lstm.lstm_backward")
    for reverse in (False, True):
        x, lengths, h0, c0, W_ih, W_hh, b = _seq(ctx.rng, B=4, T=7, nan_padding=True)
        y, (h_n, _), cache = fwd(x, lengths, h0, c0, W_ih, W_hh, b, reverse=reverse, backend="numpy")
        dh = ctx.rng.standard_normal(y.shape)
        dh_n, dc_n = ctx.rng.standard_normal(h_n.shape), ctx.rng.standard_normal(h_n.shape)
        with ctx.patched(CELL_B, ctx.fn(KERNEL_B)):
            grads = bwd(dh, cache, dh_n, dc_n)
        valid = np.arange(x.shape[1])[None, :] < lengths[:, None]
        d = "reverse" if reverse else "forward"
        axes = (("b", "t", "d"), ("b", "j"), ("b", "j"), ("k", "d"), ("k", "j"), ("k",))
        for n, g, ax in zip(("dx", "dh0", "dc0", "dW_ih", "dW_hh", "db"), grads, axes):
            ctx.compare(f"{n}_{d}", g, tol="sequence", axes=ax, name=f"{n} ({d})",
                        mask=valid[..., None] if n == "dx" else None)


ITEMS = [
    Item(
        "cell-forward",
        3,
        ("lstm:gates", "lstm:cell", "lstm:hidden", "lstm:mask"),
        [
            Term("one step: h, c and the gates", _cell_step),
            Term("padded rows: state carried, output 0, NaN never read", _cell_mask),
            Term("inside the reference loop, against the naive LSTM", _cell_in_solution_loop, public=False),
            Term(
                "inside the reference loop, reverse",
                lambda ctx: _cell_in_solution_loop(ctx, True),
                public=False,
            ),
        ],
    ),
    Item(
        "sequence-forward",
        2,
        ("lstm:preact", "lstm:reverse", "lstm:mask"),
        [
            Term("ragged batch: outputs, final states, carried states", _seq_forward),
            Term("ragged batch, reverse=True", lambda ctx: _seq_forward(ctx, reverse=True)),
            Term(
                "against the naive LSTM, both directions",
                lambda ctx: (_seq_naive(ctx, False), _seq_naive(ctx, True)),
                public=False,
            ),
            Term("NaN in the padding", lambda ctx: _seq_forward(ctx, nan_padding=True), public=False),
        ],
    ),
    Item(
        "cell-backward",
        3,
        ("lstm:dcell", "lstm:dgates", "lstm:dmask"),
        [
            Term("one step: all six gradients", _cell_backward),
            Term("gradient check through h (float64)", _cell_gradcheck),
            Term("gradient check through c (float64)", lambda ctx: _cell_gradcheck(ctx, "c")),
            Term("padded rows pass the carried gradients through", _cell_backward_mask, public=False),
        ],
    ),
    Item(
        "bptt",
        3,
        ("lstm:dhprev", "lstm:dweights", "lstm:dinput"),
        [
            Term("ragged batch: dx, dh0, dc0, dW_ih, dW_hh, db", _bptt),
            Term("gradient check, ragged batch (float64)", _bptt_gradcheck),
            Term(
                "reverse=True with gradients of the final states",
                lambda ctx: _bptt(ctx, reverse=True, final_grads=True),
            ),
            Term("gradient check, reverse (float64)", lambda ctx: _bptt_gradcheck(ctx, True), public=False),
            Term(
                "NaN in the padding: dx exactly 0 there",
                lambda ctx: _bptt(ctx, nan_padding=True),
                public=False,
            ),
        ],
    ),
    Item(
        "numba-cell",
        2,
        FORWARD_TAGS + BACKWARD_TAGS,
        [
            Term("forward kernel: one step, padded rows, parity with the twin (float64)",
                 lambda ctx: _kernel_step(ctx, "forward"), tags=FORWARD_TAGS),
            Term("backward kernel: one step, padded rows, parity with the twin (float64)",
                 lambda ctx: _kernel_step(ctx, "backward"), tags=BACKWARD_TAGS),
            Term("forward kernel, float32 (1e-5)", lambda ctx: _kernel_step(ctx, "forward", np.float32),
                 tags=FORWARD_TAGS),
            Term("backward kernel, float32 (1e-5)", lambda ctx: _kernel_step(ctx, "backward", np.float32),
                 tags=BACKWARD_TAGS, public=False),
            Term("forward kernel inside lstm_forward: ragged, NaN padding, both directions", _kernel_in_loop,
                 tags=FORWARD_TAGS, public=False),
            Term("backward kernel inside lstm_backward: ragged, NaN padding, both directions",
                 _kernel_in_bptt, tags=BACKWARD_TAGS, public=False),
        ],
        description="bonus: lstm_cell_forward_kernel and lstm_cell_backward_kernel (kernels/lstm.py)",
        timeout=300,
        bonus=True,
    ),
]

ASSIGNMENT = Assignment(
    id="A2",
    slug="a2_lstm",
    title="LSTM: cell, sequence loop with masking and reverse direction, BPTT",
    files=("ops/lstm.py", "kernels/lstm.py"),
    withheld=("testing/reference.py",),
    items=ITEMS,
    handout="a2_lstm.md",
    docs=("walkthroughs/lstm.md",),
    kernels={
        "kernels/lstm.py": {
            "lstm_cell_forward_kernel": WRITE_KERNEL,  # the bonus: the student writes both cell kernels
            "lstm_cell_backward_kernel": WRITE_KERNEL,
            "lstm_sequence_forward_kernel": "ops.lstm._sequence_forward_numpy",
            "lstm_sequence_backward_kernel": "ops.lstm._sequence_backward_numpy",
        }
    },
    force_numpy=True,
    extras=("experiments/timit/ctc_blstm/config.py",),
    training="scratchasr train experiments/timit/ctc_blstm/config.py --data_dir=DATA --exp_dir=exp/a2 "
    "--hidden=96 --num_layers=1 --epochs=6 --dropout=0.0",
)
