"""RNN-T: brute force over every alignment, lattice invariants, finite differences, FastEmit/clamp,
memory, a PyTorch-autograd oracle, NumPy/Numba parity and property tests."""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchasr.kernels.rnnt import rnnt_backward_kernel, rnnt_forward_kernel
from scratchasr.losses import rnnt_loss, rnnt_loss_backward
from scratchasr.losses.rnnt import _rnnt_backward_numpy, _rnnt_forward_numpy
from scratchasr.testing import gradcheck
from scratchasr.testing.reference import rnnt_brute_force_grad, rnnt_brute_force_nll

BACKENDS = ["numpy", "numba"]
# The loss is O(10); its float64 round-off (~1e-15 * |L|) divided by the step 1e-6 puts the finite-
# difference noise near 1e-9 in absolute terms, so atol sits there; rtol is STYLE's 1e-6 for losses.
RTOL, ATOL = 1e-6, 1e-9


def _batch(rng, B, T, U, V, blank=0, scale=2.0, dtype=np.float64):
    x = (scale * rng.standard_normal((B, T, U + 1, V))).astype(dtype)
    labels = [k for k in range(V) if k != blank]
    return x, rng.choice(labels, size=(B, U))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("T,U,V,blank", [(1, 0, 2, 0), (3, 2, 3, 0), (2, 3, 4, 2), (4, 3, 3, 1), (1, 3, 3, 0),
                                         (4, 1, 5, 4)])
def test_loss_equals_brute_force_sum_over_alignments(rng, backend, T, U, V, blank):
    x, y = _batch(rng, 1, T, U, V, blank=blank)
    if U >= 2:
        y[0, 1] = y[0, 0]  # repeats are nothing special for RNN-T, but test them anyway
    loss, cache = rnnt_loss(x, y, [T], [U], blank=blank, reduction="none", backend=backend)
    np.testing.assert_allclose(loss[0], rnnt_brute_force_nll(x[0], list(y[0]), blank), rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_invariants_diagonals_alpha_beta_gradient_sum(rng, backend):
    B, T, U, V = 3, 9, 6, 7
    x, y = _batch(rng, B, T, U, V, blank=5)
    Tl, Ul = np.array([9, 4, 2]), np.array([6, 6, 0])  # row 1 has more labels than frames
    loss, cache = rnnt_loss(x, y, Tl, Ul, blank=5, reduction="none", backend=backend)
    np.testing.assert_allclose(cache.log_like[:, 0], cache.log_like[:, 1], rtol=0, atol=1e-9)
    for b in range(B):
        la, lbeta = cache.log_alpha[b], cache.log_beta[b]
        for n in range(Tl[b] + Ul[b]):  # sum over t + u = n of alpha * beta = P(y|x) for every n
            cells = [la[t, n - t] + lbeta[t, n - t] for t in range(Tl[b]) if 0 <= n - t <= Ul[b]]
            np.testing.assert_allclose(np.logaddexp.reduce(cells), cache.log_like[b, 0], rtol=0, atol=1e-9)
    d = rnnt_loss_backward(np.ones(B), cache)
    np.testing.assert_allclose(d.sum(-1), 0.0, atol=1e-12)
    for b in range(B):
        assert np.all(d[b, Tl[b]:] == 0.0) and np.all(d[b, :, Ul[b] + 1:] == 0.0)


@pytest.mark.parametrize("backend,reduction", [("numpy", "none"), ("numpy", "sum"), ("numpy", "mean"),
                                               ("numba", "none")])  # numba = numpy is tested by parity
@pytest.mark.parametrize("B,T,U,V,Tl,Ul,blank", [
    (2, 5, 3, 4, [5, 3], [3, 1], 0),
    (2, 3, 4, 3, [3, 2], [4, 2], 2),  # U > T
    (3, 6, 2, 5, [6, 1, 4], [2, 2, 0], 1),
])
def test_gradcheck(rng, backend, reduction, B, T, U, V, Tl, Ul, blank):
    x, y = _batch(rng, B, T, U, V, blank=blank, scale=1.5)
    Tl, Ul = np.array(Tl), np.array(Ul)

    def fwd(x):
        return rnnt_loss(x, y, Tl, Ul, blank=blank, reduction=reduction, backend=backend)

    report = gradcheck(fwd, rnnt_loss_backward, [x], rtol=RTOL, atol=ATOL)
    assert report.ok, str(report)


@pytest.mark.parametrize("backend", BACKENDS)
def test_nan_in_padding_changes_nothing(rng, backend):
    B, T, U, V = 3, 7, 4, 5
    x, y = _batch(rng, B, T, U, V)
    Tl, Ul = np.array([7, 3, 5]), np.array([4, 2, 0])
    x_nan, y_pad = x.copy(), y.copy()
    for b in range(B):
        x_nan[b, Tl[b]:] = np.nan
        x_nan[b, :, Ul[b] + 1:] = np.nan
        y_pad[b, Ul[b]:] = 99
    l1, c1 = rnnt_loss(x, y, Tl, Ul, reduction="none", backend=backend)
    l2, c2 = rnnt_loss(x_nan, y_pad, Tl, Ul, reduction="none", backend=backend)
    np.testing.assert_array_equal(l1, l2)
    np.testing.assert_array_equal(rnnt_loss_backward(np.ones(B), c1), rnnt_loss_backward(np.ones(B), c2))


@pytest.mark.parametrize("backend", BACKENDS)
def test_fastemit_is_linear_in_lambda_and_keeps_the_loss(rng, backend):
    x, y = _batch(rng, 2, 6, 3, 5)
    Tl, Ul = np.array([6, 4]), np.array([3, 2])
    grads = []
    for lam in (0.0, 0.01, 0.02):
        loss, cache = rnnt_loss(x, y, Tl, Ul, fastemit_lambda=lam, reduction="none", backend=backend)
        grads.append(rnnt_loss_backward(np.ones(2), cache))
        np.testing.assert_allclose(loss, rnnt_loss(x, y, Tl, Ul, reduction="none")[0], rtol=1e-12)
    np.testing.assert_allclose(grads[2] - grads[1], grads[1] - grads[0], atol=1e-12)
    assert np.abs(grads[1] - grads[0]).max() > 1e-5
    # Only the label-transition part changes: at u = U_b (no label left) the gradient is unchanged.
    for b in range(2):
        np.testing.assert_allclose(grads[2][b, :, Ul[b]], grads[0][b, :, Ul[b]], atol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("lam", [0.0, 0.5])
def test_gradient_equals_brute_force_posterior(rng, backend, lam):
    """[rnnt:grad] and [rnnt:fastemit] against the enumeration of every alignment (U > T included)."""
    for T, U, V, blank in [(3, 2, 4, 0), (2, 3, 3, 2)]:
        x, y = _batch(rng, 1, T, U, V, blank=blank)
        loss, cache = rnnt_loss(x, y, [T], [U], blank=blank, fastemit_lambda=lam, reduction="none",
                                backend=backend)
        ref_loss, ref_grad = rnnt_brute_force_grad(x[0], list(y[0]), blank, fastemit_lambda=lam)
        np.testing.assert_allclose(loss[0], ref_loss, rtol=1e-12)
        np.testing.assert_allclose(rnnt_loss_backward(np.ones(1), cache)[0], ref_grad, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_clamp_clips_the_per_utterance_gradient(rng, backend):
    x, y = _batch(rng, 2, 5, 3, 4, scale=3.0)
    Tl, Ul = np.array([5, 4]), np.array([3, 1])
    _, c0 = rnnt_loss(x, y, Tl, Ul, reduction="none", backend=backend)
    _, c1 = rnnt_loss(x, y, Tl, Ul, reduction="none", clamp=0.1, backend=backend)
    dloss = np.array([2.0, -0.5])
    g0 = rnnt_loss_backward(np.ones(2), c0)
    g1 = rnnt_loss_backward(dloss, c1)
    assert np.abs(g0).max() > 0.1
    np.testing.assert_allclose(g1, np.clip(g0, -0.1, 0.1) * dloss[:, None, None, None], atol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
def test_extra_memory_is_O_BTU_not_O_BTUV(rng, backend):
    """With V large, everything the loss allocates besides dlogits must be far smaller than logits.

    tracemalloc sees every NumPy allocation of the wrappers and of the NumPy twins; the Numba kernels'
    only internal allocation is one (V,) scratch row per utterance (Numba's allocator is not traced).
    """
    B, T, U, V = 2, 24, 5, 4000
    x, y = _batch(rng, B, T, U, V, dtype=np.float32)
    rnnt_loss_backward(1.0, rnnt_loss(x[:, :2, :2], y[:, :1], [2, 2], [1, 1], backend=backend)[1])  # warm up
    tracemalloc.start()
    loss, cache = rnnt_loss(x, y, [24, 19], [5, 3], backend=backend)
    _, peak_fwd = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    d = rnnt_loss_backward(1.0, cache)
    _, peak_bwd = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    budget = 0.25 * x.nbytes  # the NumPy path's per-frame float64 scratch (U+1, V) is ~2/T of the logits
    assert peak_fwd < budget, (peak_fwd, x.nbytes)
    assert peak_bwd - before - d.nbytes < budget, (peak_bwd - before, d.nbytes, x.nbytes)


def _parity(rng, dtype, rtol, fwd_k, bwd_k, lam=0.0, clamp=-1.0):
    B, T, U, V = 4, 6, 4, 5
    x, y = _batch(rng, B, T, U, V, blank=3, dtype=dtype)
    Tl, Ul = np.array([6, 2, 5, 1]), np.array([4, 4, 0, 2])
    x[2, 5:] = np.nan
    outs = []
    for fwd, bwd in ((_rnnt_forward_numpy, _rnnt_backward_numpy), (fwd_k, bwd_k)):
        arrs = [np.zeros((B, T, U + 1), dtype)] + [np.full((B, T, U + 1), -np.inf) for _ in range(5)]
        arrs.append(np.zeros((B, 2)))
        fwd(x, y, Tl, Ul, 3, *arrs)
        d = np.full_like(x, np.nan)  # the backward must overwrite every element
        bwd(x, y, Tl, Ul, 3, *arrs, np.array([1.0, 0.5, 2.0, 0.0]), lam, clamp, d)
        outs.append(arrs + [d])
    for a, b in zip(*outs):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * 1e-2)


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-10), (np.float32, 1e-5)])
@pytest.mark.parametrize("lam,clamp", [(0.0, -1.0), (0.01, 0.05)])
def test_kernel_parity(rng, dtype, rtol, lam, clamp):
    _parity(rng, dtype, rtol, rnnt_forward_kernel, rnnt_backward_kernel, lam, clamp)


def test_parity_without_jit():
    """The kernels' Python bodies (NUMBA_DISABLE_JIT=1) agree with the NumPy twins."""
    code = ("import numpy as np\n"
            "from tests.losses.test_losses_rnnt import test_kernel_parity\n"
            "for dt, r in ((np.float64, 1e-10), (np.float32, 1e-5)):\n"
            "    test_kernel_parity(np.random.default_rng(1), dt, r, 0.01, 0.05)\n"
            "    test_kernel_parity(np.random.default_rng(2), dt, r, 0.0, -1.0)\n")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    res = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_float32_inputs_give_float32_outputs(rng):
    x, y = _batch(rng, 2, 6, 3, 5, dtype=np.float32)
    l32, c32 = rnnt_loss(x, y, [6, 4], [3, 2])
    l64, c64 = rnnt_loss(x.astype(np.float64), y, [6, 4], [3, 2])
    assert l32.dtype == np.float32 and rnnt_loss_backward(1.0, c32).dtype == np.float32
    np.testing.assert_allclose(l32, l64, rtol=1e-6)
    np.testing.assert_allclose(rnnt_loss_backward(1.0, c32), rnnt_loss_backward(1.0, c64), atol=1e-6)


@pytest.mark.parametrize("bad,match", [
    (dict(logits=np.zeros((2, 5, 3))), "logits:"),
    (dict(logits=np.zeros((2, 5, 4, 4))), "targets:"),  # U + 1 = 4 but targets have U = 2
    (dict(targets=np.ones((3, 2), dtype=np.int64)), "targets:"),
    (dict(targets=np.array([[1, 4], [1, 1]])), "targets:"),
    (dict(targets=np.array([[1, 0], [1, 1]])), "targets: the blank index 0 may not appear as a label"),
    (dict(logit_lengths=np.array([6, 5])), "logit_lengths:"),
    (dict(logit_lengths=np.array([0, 5])), "logit_lengths:"),
    (dict(target_lengths=np.array([3, 1])), "target_lengths:"),
    (dict(blank=4), "blank:"),
    (dict(reduction="avg"), "reduction:"),
    (dict(backend="cuda"), "backend:"),
    (dict(fastemit_lambda=-0.1), "fastemit_lambda:"),
    (dict(clamp=float("nan")), "clamp:"),
])
def test_validation_names_the_argument(bad, match):
    args = dict(logits=np.zeros((2, 5, 3, 4)), targets=np.array([[1, 2], [3, 3]]),
                logit_lengths=np.array([5, 4]), target_lengths=np.array([2, 1]))
    kw = {k: bad.pop(k) for k in ("blank", "reduction", "backend", "fastemit_lambda", "clamp") if k in bad}
    args.update(bad)
    with pytest.raises((ValueError, TypeError), match=rf"^{match}"):
        rnnt_loss(args["logits"], args["targets"], args["logit_lengths"], args["target_lengths"], **kw)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), B=st.integers(1, 3), T=st.integers(1, 8), U=st.integers(0, 6),
       V=st.integers(2, 8), blank_frac=st.floats(0, 0.999), lam=st.sampled_from([0.0, 0.01]))
def test_property_finite_nonnegative_backends_agree(seed, B, T, U, V, blank_frac, lam):
    rng = np.random.default_rng(seed)
    blank = int(blank_frac * V)
    x, y = _batch(rng, B, T, U, V, blank=blank, scale=3.0)
    Tl, Ul = rng.integers(1, T + 1, B), rng.integers(0, U + 1, B)
    res = []
    for backend in BACKENDS:
        loss, cache = rnnt_loss(x, y, Tl, Ul, blank=blank, reduction="none", fastemit_lambda=lam,
                                backend=backend)
        d = rnnt_loss_backward(np.ones(B), cache)
        assert np.all(np.isfinite(loss)) and np.all(loss >= 0) and np.all(np.isfinite(d))
        res.append((loss, d))
    np.testing.assert_allclose(res[0][0], res[1][0], rtol=1e-10)
    np.testing.assert_allclose(res[0][1], res[1][1], rtol=1e-10, atol=1e-13)


def _torch_rnnt_reference(torch, x, y, Tl, Ul, blank, fastemit_lambda=0.0):
    """PyTorch-autograd lattice, written from [rnnt:alpha-rec] node by node; FastEmit as a straight-through
    rescaling of the label log-probabilities' gradient (value unchanged, gradient times 1 + lambda)."""
    xt = torch.tensor(x, requires_grad=True)
    lp = xt.log_softmax(-1)
    nll = []
    for b in range(x.shape[0]):
        Tb, Ub = int(Tl[b]), int(Ul[b])
        lb = lp[b, :Tb, :Ub + 1, blank]
        le = lp[b, :Tb, :Ub].gather(-1, torch.tensor(y[b, :Ub]).expand(Tb, Ub)[..., None])[..., 0]
        le = (1 + fastemit_lambda) * le - fastemit_lambda * le.detach()
        a = {(0, 0): torch.zeros((), dtype=lp.dtype)}
        for t in range(Tb):
            for u in range(Ub + 1):
                if t or u:
                    terms = [a[t - 1, u] + lb[t - 1, u]] if t else []
                    terms += [a[t, u - 1] + le[t, u - 1]] if u else []
                    a[t, u] = torch.logsumexp(torch.stack(terms), 0)
        nll.append(-(a[Tb - 1, Ub] + lb[Tb - 1, Ub]))
    return xt, torch.stack(nll)


@pytest.mark.oracle
@pytest.mark.parametrize("lam,clamp", [(0.0, -1.0), (0.0, 0.05), (0.02, -1.0)])
def test_oracle_torch_autograd_lattice(rng, lam, clamp):
    """torch autograd through our own recursion, written again node by node: it checks the hand-derived
    backward (including FastEmit) against automatic differentiation, not against a peer's definition;
    the peer is test_oracle_nemo_warprnnt_numba."""
    torch = pytest.importorskip("torch")
    B, T, U, V = 3, 6, 4, 6
    x, y = _batch(rng, B, T, U, V, blank=2)
    Tl, Ul = np.array([6, 3, 5]), np.array([4, 4, 0])
    xt, ref = _torch_rnnt_reference(torch, x, y, Tl, Ul, 2, lam)
    ref.sum().backward()
    g_ref = xt.grad.numpy()
    if clamp > 0:
        g_ref = np.clip(g_ref, -clamp, clamp)
    for backend in BACKENDS:
        loss, cache = rnnt_loss(x, y, Tl, Ul, blank=2, reduction="none", fastemit_lambda=lam, clamp=clamp,
                                backend=backend)
        np.testing.assert_allclose(loss, ref.detach().numpy(), rtol=1e-10)
        np.testing.assert_allclose(rnnt_loss_backward(np.ones(B), cache), g_ref, rtol=1e-8, atol=1e-12)


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("lam,clamp", [(0.0, -1.0), (0.01, -1.0), (0.0, 0.05), (0.02, 0.1)])
@pytest.mark.parametrize("blank", [0, 3])
def test_oracle_nemo_warprnnt_numba(rng, dtype, lam, clamp, blank):
    """A peer, not a copy: NeMo's RNN-T loss (the ``warprnnt-numba`` package, its CPU path: explicit
    log-softmax, NeMo's own alpha/beta loops, gradient with respect to the log-probabilities pushed
    through torch's log-softmax, then ``LogSoftmaxGradModification`` clamping the logits' gradient).
    Ragged batches (one empty target, one single frame); loss, gradient, FastEmit and clamp.
    NeMo reports the cost with FastEmit as ``(1 + lambda) * NLL``; our loss keeps the NLL (torchaudio's
    and the FastEmit paper's convention), so the comparison scales it. The gradients agree as they are."""
    torch = pytest.importorskip("torch")
    warprnnt = pytest.importorskip("warprnnt_numba.rnnt_loss.rnnt_pytorch")
    B, T, U, V = 4, 6, 4, 5
    x, y = _batch(rng, B, T, U, V, blank=blank, dtype=dtype)
    Tl, Ul = np.array([6, 3, 5, 1]), np.array([2, 4, 0, 1])     # NeMo needs max(Tl) = T, max(Ul) = U
    xt = torch.tensor(x, requires_grad=True)
    i32 = dict(dtype=torch.int32)
    cost = warprnnt.rnnt_loss(xt, torch.tensor(y, **i32), torch.tensor(Tl, **i32), torch.tensor(Ul, **i32),
                              blank=blank, reduction="none", fastemit_lambda=lam, clamp=max(clamp, 0.0))
    cost.sum().backward()
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-6)
    for backend in BACKENDS:
        loss, cache = rnnt_loss(x, y, Tl, Ul, blank=blank, reduction="none", fastemit_lambda=lam, clamp=clamp,
                                backend=backend)
        assert loss.dtype == dtype
        np.testing.assert_allclose((1 + lam) * loss, cost.detach().numpy(), **tol)
        dx = rnnt_loss_backward(np.ones(B, dtype=dtype), cache)
        np.testing.assert_allclose(dx, xt.grad.numpy(), **tol)
        if clamp > 0:
            assert np.abs(dx).max() == pytest.approx(clamp)      # the clamp was active
        assert np.all(dx[1, 3:] == 0) and np.all(dx[3, 1:] == 0) and np.all(dx[2, :, 1:] == 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_masked_vocabulary_minus_inf_logits(rng, backend):
    """Logits of -inf (a masked symbol) are log 0: finite loss, zero gradient there, never NaN."""
    x, y = _batch(rng, 2, 5, 3, 6)
    y[y == 5] = 1
    x[..., 5] = -np.inf
    Tl, Ul = np.array([5, 3]), np.array([3, 2])
    loss, cache = rnnt_loss(x, y, Tl, Ul, reduction="none", backend=backend)
    d = rnnt_loss_backward(np.ones(2), cache)
    ref, _ = rnnt_loss(x[..., :5], y, Tl, Ul, reduction="none", backend=backend)
    np.testing.assert_allclose(loss, ref, rtol=1e-12)
    assert not np.any(np.isnan(d)) and np.all(d[..., 5] == 0.0)
