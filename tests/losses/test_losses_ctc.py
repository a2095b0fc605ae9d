"""CTC: brute force over every alignment, invariants, finite differences, torch oracle, parity, properties."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchasr.kernels.ctc import ctc_backward_kernel, ctc_forward_kernel
from scratchasr.losses import ctc_align, ctc_loss, ctc_loss_backward
from scratchasr.losses.ctc import _ctc_backward_numpy, _ctc_forward_numpy
from scratchasr.testing import gradcheck
from scratchasr.testing.reference import (ctc_brute_force_best_path, ctc_brute_force_grad,
                                          ctc_brute_force_nll, ctc_collapse, ctc_state_paths, log_softmax)

BACKENDS = ["numpy", "numba"]
# The loss is O(10); its float64 round-off (~1e-15 * |L|) divided by the step 1e-6 puts the finite-
# difference noise near 1e-9 in absolute terms, so atol sits there; rtol is STYLE's 1e-6 for losses.
RTOL, ATOL = 1e-6, 1e-9


def _batch(rng, B, T, V, S, blank=0, scale=2.0, dtype=np.float64):
    x = (scale * rng.standard_normal((B, T, V))).astype(dtype)
    labels = [k for k in range(V) if k != blank]
    y = rng.choice(labels, size=(B, S))
    return x, y


CASES = [  # (T, V, blank, target): repeats, empty, blank anywhere, exactly feasible, infeasible
    (5, 3, 0, [1, 2]), (5, 3, 0, [1, 1]), (5, 3, 2, [0, 0, 1]), (4, 3, 1, []), (5, 3, 0, [2, 2, 2]),
    (3, 3, 0, [1, 1]), (1, 2, 0, [1]), (6, 3, 1, [2, 0, 2]), (2, 3, 0, [1, 1]),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("T,V,blank,y", CASES)
def test_loss_equals_brute_force_sum_over_alignments(rng, backend, T, V, blank, y):
    x = 2 * rng.standard_normal((1, T, V))
    S = max(len(y), 1)
    tgt = np.full((1, S), 7 if blank != 7 else 8)  # padding deliberately out of vocabulary: never read
    tgt[0, :len(y)] = y
    loss, cache = ctc_loss(x, tgt, [T], [len(y)], blank=blank, reduction="none", backend=backend)
    ref = ctc_brute_force_nll(x[0], y, blank)
    if np.isinf(ref):
        assert np.isposinf(loss[0])
    else:
        np.testing.assert_allclose(loss[0], ref, rtol=1e-12)
        np.testing.assert_allclose(cache.log_like[0, 0], cache.log_like[0, 1], rtol=0, atol=1e-9)
    best = ctc_align(x, tgt, [T], [len(y)], blank=blank)
    np.testing.assert_allclose(best.log_prob[0], ctc_brute_force_best_path(x[0], y, blank), rtol=1e-12)
    if np.isfinite(best.log_prob[0]):
        assert ctc_collapse(best.labels[0], blank) == tuple(y)
        lp = log_softmax(x[0])
        np.testing.assert_allclose(lp[np.arange(T), best.labels[0]].sum(), best.log_prob[0], rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("T,V,blank,y", [(4, 3, 0, [1, 1]), (5, 3, 2, [0, 1]), (3, 2, 1, [])])
def test_gradient_equals_brute_force_posterior(rng, backend, T, V, blank, y):
    """[ctc:grad] against the enumeration: softmax minus the posterior of each symbol at each frame."""
    x = 2 * rng.standard_normal((1, T, V))
    tgt = np.array([y or [1 - blank]])
    loss, cache = ctc_loss(x, tgt, [T], [len(y)], blank=blank, reduction="none", backend=backend)
    ref_loss, ref_grad = ctc_brute_force_grad(x[0], y, blank)
    np.testing.assert_allclose(loss[0], ref_loss, rtol=1e-12)
    np.testing.assert_allclose(ctc_loss_backward(np.ones(1), cache)[0], ref_grad, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_invariants_alpha_beta_and_gradient_sums_to_zero(rng, backend):
    B, T, V, S = 4, 30, 7, 8
    x, y = _batch(rng, B, T, V, S, blank=3)
    y[0, 2] = y[0, 1]
    ll, tl = np.array([30, 25, 17, 9]), np.array([8, 5, 0, 4])
    loss, cache = ctc_loss(x, y, ll, tl, blank=3, reduction="none", backend=backend)
    assert np.all(np.isfinite(loss)) and np.all(loss > 0)
    np.testing.assert_allclose(cache.log_like[:, 0], cache.log_like[:, 1], rtol=0, atol=1e-9)
    d = ctc_loss_backward(np.ones(B), cache)
    np.testing.assert_allclose(d.sum(-1), 0.0, atol=1e-12)  # softmax and occupancy both sum to 1 per frame
    for b in range(B):
        assert np.all(d[b, ll[b]:] == 0.0)


@pytest.mark.parametrize("backend,reduction", [("numpy", "none"), ("numpy", "sum"), ("numpy", "mean"),
                                               ("numba", "none")])  # numba = numpy is tested by parity
@pytest.mark.parametrize("B,T,V,S,ll,tl,blank", [
    (2, 6, 4, 2, [6, 4], [2, 1], 0),
    (3, 7, 5, 3, [7, 5, 3], [3, 0, 1], 4),
    (2, 5, 3, 2, [5, 5], [2, 2], 1),
])
def test_gradcheck(rng, backend, reduction, B, T, V, S, ll, tl, blank):
    x, y = _batch(rng, B, T, V, S, blank=blank, scale=1.5)
    y[-1, :] = y[-1, 0]  # repeated label
    ll, tl = np.array(ll), np.array(tl)

    def fwd(x):
        return ctc_loss(x, y, ll, tl, blank=blank, reduction=reduction, backend=backend)

    report = gradcheck(fwd, ctc_loss_backward, [x], rtol=RTOL, atol=ATOL)
    assert report.ok, str(report)
    loss, cache = fwd(x)
    d = ctc_loss_backward(np.ones_like(loss), cache)
    for b in range(B):
        assert np.all(d[b, ll[b]:] == 0.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_nan_in_padding_changes_nothing(rng, backend):
    B, T, V, S = 3, 10, 5, 4
    x, y = _batch(rng, B, T, V, S)
    ll, tl = np.array([10, 6, 3]), np.array([4, 2, 1])
    x_nan, y_pad = x.copy(), y.copy()
    for b in range(B):
        x_nan[b, ll[b]:] = np.nan
        y_pad[b, tl[b]:] = -5
    l1, c1 = ctc_loss(x, y, ll, tl, reduction="none", backend=backend)
    l2, c2 = ctc_loss(x_nan, y_pad, ll, tl, reduction="none", backend=backend)
    np.testing.assert_array_equal(l1, l2)
    np.testing.assert_array_equal(ctc_loss_backward(np.ones(B), c1), ctc_loss_backward(np.ones(B), c2))
    a1, a2 = ctc_align(x, y, ll, tl), ctc_align(x_nan, y_pad, ll, tl)
    np.testing.assert_array_equal(a1.labels, a2.labels)


@pytest.mark.parametrize("backend", BACKENDS)
def test_infeasible_gives_inf_or_zero_never_nan(rng, backend):
    x, y = _batch(rng, 3, 4, 4, 3)
    y[1] = [2, 2, 2]  # needs 5 frames, has 4
    ll, tl = np.array([4, 4, 0]), np.array([3, 3, 1])  # row 0 needs 3 (ok), row 1 infeasible, row 2 T=0
    loss, cache = ctc_loss(x, y, ll, tl, reduction="none", backend=backend)
    assert np.isfinite(loss[0]) and np.isposinf(loss[1]) and np.isposinf(loss[2])
    d = ctc_loss_backward(np.ones(3), cache)
    assert not np.any(np.isnan(d)) and np.all(d[1:] == 0.0) and np.any(d[0] != 0)
    total, cache = ctc_loss(x, y, ll, tl, zero_infinity=True, backend=backend)
    np.testing.assert_allclose(total, loss[0])
    d = ctc_loss_backward(1.0, cache)
    assert np.all(d[1:] == 0.0) and not np.any(np.isnan(d))
    empty, _ = ctc_loss(x, y, [0, 0, 0], [0, 0, 0], reduction="none", backend=backend)
    np.testing.assert_array_equal(empty, 0.0)


def _parity(rng, dtype, rtol, fwd_k, bwd_k):
    B, T, V, S = 4, 9, 6, 3
    x, y = _batch(rng, B, T, V, S, blank=2, dtype=dtype)
    y[0] = [1, 1, 1]
    ll, tl = np.array([9, 7, 4, 0]), np.array([3, 2, 0, 0])
    x[1, 7:] = np.nan
    outs = []
    for fwd, bwd in ((_ctc_forward_numpy, _ctc_backward_numpy), (fwd_k, bwd_k)):
        arrs = [np.zeros((B, T), dtype), np.zeros((B, T)), np.full((B, T, 2 * S + 1), -np.inf),
                np.full((B, T, 2 * S + 1), -np.inf), np.zeros((B, 2))]
        fwd(x, y, ll, tl, 2, *arrs)
        d = np.zeros_like(x)
        bwd(x, y, ll, tl, 2, *arrs, np.array([1.0, 0.5, 2.0, 1.0]), d)
        outs.append(arrs + [d])
    for a, b in zip(*outs):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * 1e-2)


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-10), (np.float32, 1e-5)])
def test_kernel_parity(rng, dtype, rtol):
    _parity(rng, dtype, rtol, ctc_forward_kernel, ctc_backward_kernel)


def test_parity_without_jit():
    """The kernels' Python bodies (NUMBA_DISABLE_JIT=1) agree with the NumPy twins."""
    code = ("import numpy as np\n"
            "from tests.losses.test_losses_ctc import test_kernel_parity\n"
            "for dt, r in ((np.float64, 1e-10), (np.float32, 1e-5)):\n"
            "    test_kernel_parity(np.random.default_rng(1), dt, r)\n")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    res = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_float32_inputs_give_float32_outputs(rng):
    x, y = _batch(rng, 2, 8, 5, 3, dtype=np.float32)
    l32, c32 = ctc_loss(x, y, [8, 6], [3, 2])
    l64, c64 = ctc_loss(x.astype(np.float64), y, [8, 6], [3, 2])
    assert l32.dtype == np.float32 and ctc_loss_backward(1.0, c32).dtype == np.float32
    np.testing.assert_allclose(l32, l64, rtol=1e-6)
    np.testing.assert_allclose(ctc_loss_backward(1.0, c32), ctc_loss_backward(1.0, c64), atol=1e-6)


@pytest.mark.parametrize("bad,match", [
    (dict(logits=np.zeros((2, 5))), "logits:"),
    (dict(logits=np.zeros((2, 5, 4), dtype=np.int64)), "logits:"),
    (dict(targets=np.ones((3, 2), dtype=np.int64)), "targets:"),
    (dict(targets=np.ones((2, 2))), "targets:"),
    (dict(targets=np.array([[1, 4], [1, 1]])), "targets:"),
    (dict(targets=np.array([[1, 0], [1, 1]])), "targets: the blank index 0 may not appear as a label"),
    (dict(logit_lengths=np.array([6, 5])), "logit_lengths:"),
    (dict(logit_lengths=np.array([5])), "logit_lengths:"),
    (dict(target_lengths=np.array([3, 1])), "target_lengths:"),
    (dict(target_lengths=np.array([-1, 1])), "target_lengths:"),
    (dict(blank=4), "blank:"),
    (dict(blank=-1), "blank:"),
    (dict(reduction="avg"), "reduction:"),
    (dict(backend="cuda"), "backend:"),
])
def test_validation_names_the_argument(bad, match):
    args = dict(logits=np.zeros((2, 5, 4)), targets=np.array([[1, 2], [3, 3]]),
                logit_lengths=np.array([5, 4]), target_lengths=np.array([2, 1]))
    kw = {k: bad.pop(k) for k in ("blank", "reduction", "backend") if k in bad}
    args.update(bad)
    with pytest.raises((ValueError, TypeError), match=rf"^{match}"):
        ctc_loss(args["logits"], args["targets"], args["logit_lengths"], args["target_lengths"], **kw)


def test_backward_checks_dloss_shape(rng):
    x, y = _batch(rng, 2, 5, 4, 2)
    _, cache = ctc_loss(x, y, [5, 5], [2, 2], reduction="none")
    with pytest.raises(ValueError, match=r"^dloss:"):
        ctc_loss_backward(1.0, cache)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), B=st.integers(1, 3), T=st.integers(1, 12), V=st.integers(2, 8),
       S=st.integers(0, 5), blank_frac=st.floats(0, 0.999))
def test_property_finite_nonnegative_backends_agree(seed, B, T, V, S, blank_frac):
    rng = np.random.default_rng(seed)
    blank = int(blank_frac * V)
    x, y = _batch(rng, B, T, V, max(S, 1), blank=blank, scale=3.0)
    ll = rng.integers(0, T + 1, B)
    tl = np.minimum(rng.integers(0, S + 1, B), (ll + 1) // 2)  # feasible: 2S - 1 <= T even with repeats
    res = []
    for backend in BACKENDS:
        loss, cache = ctc_loss(x, y, ll, tl, blank=blank, reduction="none", backend=backend)
        d = ctc_loss_backward(np.ones(B), cache)
        assert np.all(np.isfinite(loss)) and np.all(loss >= 0) and np.all(np.isfinite(d))
        res.append((loss, d))
    # A near-certain path gives a loss near 0 (1.6e-8 for seed 3, B 3, T 3, V 2, S 1): -log p is then
    # accurate to ~1e-16 absolute, not relative, so the loss comparison needs an atol too.
    np.testing.assert_allclose(res[0][0], res[1][0], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(res[0][1], res[1][1], rtol=1e-10, atol=1e-13)


@pytest.mark.oracle
@pytest.mark.parametrize("zero_infinity", [False, True])
@pytest.mark.parametrize("blank", [0, 5])
def test_oracle_torch_ctc_loss(rng, zero_infinity, blank):
    torch = pytest.importorskip("torch")
    B, T, V, S = 5, 20, 6, 6
    x, y = _batch(rng, B, T, V, S, blank=blank)
    y[0, 1] = y[0, 0]
    ll, tl = np.array([20, 14, 9, 20, 3]), np.array([6, 4, 0, 2, 3])  # last one infeasible
    if not zero_infinity:
        ll[4] = 10
    xt = torch.tensor(x, requires_grad=True)
    ref = torch.nn.functional.ctc_loss(xt.log_softmax(-1).transpose(0, 1), torch.tensor(y), torch.tensor(ll),
                                       torch.tensor(tl), blank=blank, reduction="none",
                                       zero_infinity=zero_infinity)
    ref.sum().backward()
    for backend in BACKENDS:
        loss, cache = ctc_loss(x, y, ll, tl, blank=blank, reduction="none", zero_infinity=zero_infinity,
                               backend=backend)
        np.testing.assert_allclose(loss, ref.detach().numpy(), rtol=1e-10)
        d = ctc_loss_backward(np.ones(B), cache)
        np.testing.assert_allclose(d, xt.grad.numpy(), rtol=1e-8, atol=1e-12)


def test_extreme_logits_take_the_exact_fallback(rng):
    """Logits of scale 400 make states of one frame differ by thousands of nats, so the kernel's
    shifted linear-space sums underflow and it must fall back to exact log-space adds."""
    x, y = _batch(rng, 3, 25, 6, 5, scale=400.0)
    ll, tl = np.array([25, 18, 11]), np.array([5, 4, 5])
    res = []
    for backend in BACKENDS:
        loss, cache = ctc_loss(x, y, ll, tl, reduction="none", backend=backend)
        res.append((loss, ctc_loss_backward(np.ones(3), cache), cache.log_alpha, cache.log_beta))
    assert np.all(np.isfinite(res[0][0]))
    for a, b in zip(*res):  # log values are ~1e4 here, so round-off is ~1e-12 absolute
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-9)
    xs, ys = x[:1, :5] / 100, y[:1, :2]  # and the brute force with log-probs in the hundreds
    loss, _ = ctc_loss(xs * 60, ys, [5], [2], reduction="none")
    np.testing.assert_allclose(loss[0], ctc_brute_force_nll(xs[0] * 60, list(ys[0]), 0), rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_masked_vocabulary_minus_inf_logits(rng, backend):
    """Logits of -inf (a masked symbol) are log 0: same loss as without the symbol, zero gradient there."""
    x, y = _batch(rng, 2, 8, 6, 3)
    y[y == 5] = 1
    x[..., 5] = -np.inf
    loss, cache = ctc_loss(x, y, [8, 6], [3, 2], reduction="none", backend=backend)
    d = ctc_loss_backward(np.ones(2), cache)
    ref, _ = ctc_loss(x[..., :5], y, [8, 6], [3, 2], reduction="none", backend=backend)
    np.testing.assert_allclose(loss, ref, rtol=1e-12)
    assert not np.any(np.isnan(d)) and np.all(d[..., 5] == 0.0)


@pytest.mark.parametrize("seed", range(16))
def test_ctc_align_tie_break_keeps_the_highest_state(seed):
    """ctc_align's documented tie-break: among equally likely best paths it returns the one whose
    states, read from the last frame backwards, are largest (final blank over last label, then at each
    step stay in s over s-1 over s-2). Logits take two values per frame, so exact ties abound; the
    brute force sums each path in time order, the same additions as the Viterbi recursion."""
    rng = np.random.default_rng(seed)
    T, V, blank = int(rng.integers(3, 7)), 4, int(rng.integers(0, 4))
    labels = [k for k in range(V) if k != blank]
    y = [int(k) for k in rng.choice(labels, size=int(rng.integers(1, 3)))]
    x = np.where(rng.random((T, V)) < 0.5, 0.0, -2.0)
    lp = log_softmax(x)
    scored = []
    for ext, path in ctc_state_paths(y, blank, T):
        score = 0.0
        for t, s in enumerate(path):
            score += lp[t, ext[s]]
        scored.append((score, path[::-1], path))
    best = max(s for s, _, _ in scored)
    ties = [(rev, path) for s, rev, path in scored if s == best]
    expected = max(ties)[1]
    out = ctc_align(x[None], np.array([y]), [T], [len(y)], blank=blank)
    assert out.log_prob[0] == best
    assert tuple(out.states[0]) == expected, f"{len(ties)} tied best paths"


def test_ctc_align_uniform_logits_emits_labels_as_early_as_possible():
    """Uniform logits: every valid path ties. Keeping the highest state when walking back from the end
    keeps the final blank as long as possible, so the labels come first."""
    out = ctc_align(np.zeros((1, 5, 3)), np.array([[1, 2]]), [5], [2], blank=0)
    assert out.states[0].tolist() == [1, 3, 4, 4, 4]
    assert out.labels[0].tolist() == [1, 2, 0, 0, 0]
    out = ctc_align(np.zeros((1, 5, 3)), np.array([[1, 1]]), [5], [2], blank=0)   # the blank between repeats
    assert out.states[0].tolist() == [1, 2, 3, 4, 4]
