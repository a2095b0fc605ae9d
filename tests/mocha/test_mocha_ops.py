"""Monotonic attention and MoChA chunk weights: naive-summation oracles, finite differences,
hard limits, stability, the parallel form's accuracy limits, and Numba/NumPy parity."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from scratchasr.kernels import mocha as km
from scratchasr.ops import mocha as ops
from scratchasr.ops.mocha import (hard_monotonic_attention, mocha_chunk_backward, mocha_chunk_forward,
                                  monotonic_attention_backward, monotonic_attention_forward)
from scratchasr.testing import gradcheck
from scratchasr.testing.reference import mocha_alpha_naive, mocha_beta_naive

RTOL, ATOL = 1e-6, 1e-9  # STYLE: sequence ops 1e-6; atol just above float64 round-off of L / h


def _inputs(rng, B, T, lengths, lo=0.02, hi=0.98, nan_pad=True):
    p = rng.uniform(lo, hi, size=(B, T))
    a = rng.dirichlet(np.ones(T), size=B) * rng.uniform(0.5, 1.0, size=(B, 1))
    u = rng.uniform(-3, 3, size=(B, T))
    if nan_pad:
        for b, L in enumerate(lengths):
            p[b, L:] = np.nan
            a[b, L:] = np.nan
            u[b, L:] = np.nan
    return p, a, u


SIZES = [(1, 1, [1]), (2, 5, [5, 3]), (3, 7, [7, 1, 4]), (2, 12, [9, 12])]


@pytest.mark.parametrize("B,T,lengths", SIZES)
@pytest.mark.parametrize("mode,backend", [("recursive", "numpy"), ("recursive", "numba"), ("parallel", None)])
def test_alpha_matches_paper_summation(B, T, lengths, mode, backend):
    rng = np.random.default_rng(B * 100 + T)
    p, a, _ = _inputs(rng, B, T, lengths)
    alpha, _ = monotonic_attention_forward(p, a, mode=mode, lengths=np.array(lengths), backend=backend)
    assert np.all(np.isfinite(alpha))
    for b, L in enumerate(lengths):
        np.testing.assert_allclose(alpha[b], mocha_alpha_naive(p[b], a[b], L), rtol=1e-12, atol=1e-15)
        assert np.all(alpha[b, L:] == 0)


@pytest.mark.parametrize("B,T,lengths", SIZES)
@pytest.mark.parametrize("w", [1, 2, 3, 5])
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_beta_matches_paper_double_sum(B, T, lengths, w, backend):
    rng = np.random.default_rng(7 * B + T + w)
    _, a, u = _inputs(rng, B, T, lengths)
    beta, _ = mocha_chunk_forward(a, u, chunk_size=w, lengths=np.array(lengths), backend=backend)
    for b, L in enumerate(lengths):
        np.testing.assert_allclose(beta[b], mocha_beta_naive(a[b], u[b], w, L), rtol=1e-12, atol=1e-15)
        assert np.all(beta[b, L:] == 0)
        # beta moves alpha's mass back inside each chunk, it never creates or loses any
        np.testing.assert_allclose(beta[b, :L].sum(), a[b, :L].sum(), rtol=1e-12)


def test_chunk_size_one_is_monotonic_attention_exactly(rng):
    p, a, u = _inputs(rng, 3, 9, [9, 4, 6])
    lengths = np.array([9, 4, 6])
    alpha, _ = monotonic_attention_forward(p, a, lengths=lengths)
    for backend in ("numpy", "numba"):
        beta, cache = mocha_chunk_forward(alpha, u, chunk_size=1, lengths=lengths, backend=backend)
        assert np.array_equal(beta, alpha)
        dbeta = rng.standard_normal(beta.shape)
        dalpha, du = mocha_chunk_backward(dbeta, cache)
        assert np.array_equal(dalpha, np.where(np.arange(9) < lengths[:, None], dbeta, 0))
        assert np.allclose(du, 0, atol=1e-15)  # a one-frame softmax does not depend on u


# ----------------------------------------------------------------------------- finite differences

def _check_grads(fwd, bwd, inputs, names, lengths):
    rep = gradcheck(fwd, bwd, inputs, names=names, rtol=RTOL, atol=ATOL)
    assert rep.ok, str(rep)
    out, cache = fwd(*inputs)
    grads = bwd(np.random.default_rng(1).standard_normal(out.shape), cache)
    for g in grads:
        for b, L in enumerate(lengths):
            assert np.all(g[b, L:] == 0), "padded frames must receive exactly zero gradient"
            assert np.all(np.isfinite(g[b]))


@pytest.mark.parametrize("B,T,lengths", [(2, 5, [5, 3]), (3, 7, [7, 1, 4]), (2, 6, [6, 6])])
@pytest.mark.parametrize("mode,backend", [("recursive", "numpy"), ("recursive", "numba"), ("parallel", None)])
def test_monotonic_attention_gradcheck(B, T, lengths, mode, backend):
    rng = np.random.default_rng(T + B)
    p, a, _ = _inputs(rng, B, T, lengths, nan_pad=False)
    L = np.array(lengths)
    fwd = lambda p, a: monotonic_attention_forward(p, a, mode=mode, lengths=L, backend=backend)  # noqa: E731
    _check_grads(fwd, monotonic_attention_backward, [p, a], ["p", "alpha_prev"], lengths)


@pytest.mark.parametrize("B,T,lengths,w", [(2, 5, [5, 3], 2), (3, 7, [7, 1, 4], 3), (2, 6, [6, 2], 4),
                                           (2, 4, [4, 3], 1)])
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_chunk_gradcheck(B, T, lengths, w, backend):
    rng = np.random.default_rng(T * w)
    _, a, u = _inputs(rng, B, T, lengths, nan_pad=False)
    L = np.array(lengths)
    fwd = lambda a, u: mocha_chunk_forward(a, u, chunk_size=w, lengths=L, backend=backend)  # noqa: E731
    _check_grads(fwd, mocha_chunk_backward, [a, u], ["alpha", "u"], lengths)


def test_composed_alpha_then_beta_gradcheck(rng):
    """The two ops chained, as one training step uses them."""
    p, a, u = _inputs(rng, 2, 6, [6, 4], nan_pad=False)
    L = np.array([6, 4])

    def fwd(p, a, u):
        alpha, c1 = monotonic_attention_forward(p, a, lengths=L)
        beta, c2 = mocha_chunk_forward(alpha, u, chunk_size=3, lengths=L)
        return beta, (c1, c2)

    def bwd(dbeta, cache):
        dalpha, du = mocha_chunk_backward(dbeta, cache[1])
        dp, da = monotonic_attention_backward(dalpha, cache[0])
        return dp, da, du

    assert gradcheck(fwd, bwd, [p, a, u], rtol=RTOL, atol=ATOL).ok


def test_wrong_backward_is_caught(rng):
    p, a, _ = _inputs(rng, 2, 5, [5, 5], nan_pad=False)

    def bad(d, c):
        dp, da = monotonic_attention_backward(d, c)
        return dp * 1.001, da

    assert not gradcheck(monotonic_attention_forward, bad, [p, a]).ok


# ----------------------------------------------------------------------------- limits and invariants

def test_hard_probabilities_give_the_hard_alignment(rng):
    T = 10
    for trial in range(20):
        p = (rng.uniform(size=(1, T)) < 0.3).astype(float)
        k = int(rng.integers(T))
        a = np.zeros((1, T))
        a[0, k] = 1.0
        fired = np.flatnonzero(p[0, k:])
        want = np.zeros((1, T))
        if fired.size:
            want[0, k + fired[0]] = 1.0
        for backend in ("numpy", "numba"):
            alpha, _ = monotonic_attention_forward(p, a, backend=backend)
            assert np.array_equal(alpha, want)
        alpha_par, _ = monotonic_attention_forward(p, a, mode="parallel")
        # the closed form clips 1 - p = 0 to `tiny` and the denominator to 1e-10: the hard alignment
        # survives only when no p = 1 lies *before* the attended frame k; otherwise cp_k = tiny and
        # alpha_prev_k / 1e-10 * tiny loses the whole mass (the recursion has no such failure)
        if p[0, :k].any() and fired.size:
            assert alpha_par.max() < 1e-200
        else:
            np.testing.assert_allclose(alpha_par, want, atol=1e-12)


def test_hard_attention_equals_expected_alignment_limit(rng):
    """Test-time hard attention = expected alignment and beta with p = [e >= 0] and one-hot alpha_prev."""
    B, T, w = 4, 9, 3
    L = np.array([9, 7, 5, 9])
    t = np.zeros(B, dtype=np.int64)
    a = np.zeros((B, T))
    a[:, 0] = 1.0
    for step in range(5):
        e = rng.standard_normal((B, T)) - 0.7
        u = rng.standard_normal((B, T))
        beta_h, t = hard_monotonic_attention(e, u, t, chunk_size=w, lengths=L)
        alpha, _ = monotonic_attention_forward((e >= 0).astype(float), a, lengths=L)
        beta, _ = mocha_chunk_forward(alpha, u, chunk_size=w, lengths=L)
        np.testing.assert_allclose(beta_h, beta, atol=1e-15)
        for b in range(B):
            if t[b] < 0:
                assert not alpha[b].any()
            else:
                assert alpha[b, t[b]] == 1.0
        a = alpha


def test_alignment_mass_at_most_one_and_not_renormalised(rng):
    p = rng.uniform(0.0, 0.2, size=(4, 15))
    a = np.zeros((4, 15))
    a[:, 0] = 1.0
    for mode in ("recursive", "parallel"):
        alpha, _ = monotonic_attention_forward(p, a, mode=mode)
        total = alpha.sum(axis=1)
        assert np.all(total <= 1 + 1e-12)
        # the missing mass is exactly the probability of never stopping: prod_j (1 - p_j)
        np.testing.assert_allclose(1 - total, np.prod(1 - p, axis=1), rtol=1e-10)


def test_extreme_energies_stay_finite():
    T = 8
    e = np.array([[-300.0, 300, -300, 300, -300, -300, 300, 300]])
    p = 0.5 * (1 + np.tanh(e / 2))  # sigmoid without overflow: exactly 0 or 1 here
    u = np.array([[300.0, -300, 300, -300, 300, 300, -300, 300]])
    a = np.zeros((1, T))
    a[0, 0] = 1.0
    for dtype in (np.float64, np.float32):
        for mode in ("recursive", "parallel"):
            alpha, ca = monotonic_attention_forward(p.astype(dtype), a.astype(dtype), mode=mode)
            beta, cb = mocha_chunk_forward(alpha, u.astype(dtype), chunk_size=3)
            assert np.all(np.isfinite(alpha)) and np.all(np.isfinite(beta))
            assert alpha.dtype == dtype and beta.dtype == dtype
            g = mocha_chunk_backward(np.ones((1, T), dtype), cb) + monotonic_attention_backward(
                np.ones((1, T), dtype), ca)
            assert all(np.all(np.isfinite(x)) for x in g)
        # frame 1 fires; its chunk {0, 1} has u = (300, -300): all the weight on frame 0
        np.testing.assert_allclose(beta, [[1, 0, 0, 0, 0, 0, 0, 0]], atol=1e-6)


def test_parallel_form_accuracy_limits():
    """Where the cumulative-product form breaks (documented in docs/walkthroughs/mocha.md).

    Exact recursion vs parallel closed form in float64, alpha_prev one-hot at frame k, p = 0.5:
    prod_{l<k} (1 - p_l) = 2^-k falls below the 1e-10 denominator floor at k = 34, after which
    the parallel alpha collapses to ~0 while the true alpha is 0.5^(j-k+1)."""
    T = 60
    p = np.full((1, T), 0.5)
    errs = {}
    for k in (10, 30, 40, 50):
        a = np.zeros((1, T))
        a[0, k] = 1.0
        exact, _ = monotonic_attention_forward(p, a)
        par, _ = monotonic_attention_forward(p, a, mode="parallel")
        np.testing.assert_allclose(exact[0], mocha_alpha_naive(p[0], a[0], T), rtol=1e-13, atol=1e-300)
        errs[k] = np.abs(par - exact).max()
    assert errs[10] < 1e-12 and errs[30] < 1e-12
    assert errs[40] > 0.4 and errs[50] > 0.49  # alpha_k = 0.5 exactly; parallel gives ~2^-40/1e-10 * 0.5
    # p near 1: 1 - p = 1e-6 for 3 frames already gives prod 1e-18 < 1e-10
    p = np.full((1, 8), 1 - 1e-6)
    a = np.zeros((1, 8))
    a[0, 4] = 1.0
    exact, _ = monotonic_attention_forward(p, a)
    par, _ = monotonic_attention_forward(p, a, mode="parallel")
    assert abs(exact[0, 4] - (1 - 1e-6)) < 1e-15 and par[0, 4] < 1e-3


# ----------------------------------------------------------------------------- kernels and twins

def _parity_inputs(rng, B=3, T=8, lengths=(8, 1, 5)):
    p, a, u = _inputs(rng, B, T, lengths, nan_pad=False)
    return p, a, u, np.array(lengths, dtype=np.int64)


def _run_parity(fns, rng):
    fwd_r, bwd_r, fwd_c, bwd_c = fns
    p, a, u, L = _parity_inputs(rng)
    B, T = p.shape
    outs = {}
    for name, f1, f2 in (("numpy", ops._recursive_forward_numpy, ops._recursive_backward_numpy),
                         ("k", fwd_r, bwd_r)):
        alpha, q = np.empty((B, T)), np.empty((B, T))
        f1(p, a, L, alpha, q)
        dp, da = np.empty((B, T)), np.empty((B, T))
        f2(u, p, q, L, dp, da)
        outs[name] = [alpha, q, dp, da]
    for name, f1, f2 in (("numpy", ops._chunk_forward_numpy, ops._chunk_backward_numpy), ("k", fwd_c, bwd_c)):
        beta, S = np.empty((B, T)), np.empty((B, T, 3))
        f1(a, u, L, 3, beta, S)
        dal, du = np.empty((B, T)), np.empty((B, T))
        f2(p, a, S, beta, L, 3, dal, du)
        outs[name] += [beta, S, dal, du]
    for x, y in zip(outs["numpy"], outs["k"]):
        np.testing.assert_allclose(y, x, rtol=1e-10, atol=1e-300)


def test_kernels_match_numpy_twins(rng):
    _run_parity((km.monotonic_recursive_forward_kernel, km.monotonic_recursive_backward_kernel,
                 km.mocha_chunk_forward_kernel, km.mocha_chunk_backward_kernel), rng)


def test_kernel_python_bodies_match_twins(rng):
    _run_parity((km.monotonic_recursive_forward_kernel.py_func,
                 km.monotonic_recursive_backward_kernel.py_func,
                 km.mocha_chunk_forward_kernel.py_func, km.mocha_chunk_backward_kernel.py_func), rng)


def test_parity_under_disable_jit():
    code = ("import numpy as np, sys; sys.path.insert(0, 'tests/mocha');"
            "import test_mocha_ops as t; t.test_kernels_match_numpy_twins(np.random.default_rng(3));"
            "t.test_alpha_matches_paper_summation(2, 5, [5, 3], 'recursive', 'numba'); print('ok')")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    r = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr


def test_float32_backends_agree(rng):
    p, a, u, L = _parity_inputs(rng)
    p, a, u = p.astype(np.float32), a.astype(np.float32), u.astype(np.float32)
    r = [monotonic_attention_forward(p, a, lengths=L, backend=be)[0] for be in ("numpy", "numba")]
    c = [mocha_chunk_forward(a, u, chunk_size=2, lengths=L, backend=be)[0] for be in ("numpy", "numba")]
    assert r[0].dtype == np.float32
    np.testing.assert_allclose(r[1], r[0], rtol=1e-5)
    np.testing.assert_allclose(c[1], c[0], rtol=1e-5)


# ----------------------------------------------------------------------------- validation and purity

def test_bad_input_raises(rng):
    p, a, u, L = _parity_inputs(rng)
    with pytest.raises(ValueError, match=r"^mode:"):
        monotonic_attention_forward(p, a, mode="hard")
    with pytest.raises(ValueError, match=r"^alpha_prev:"):
        monotonic_attention_forward(p, a[:, :-1])
    with pytest.raises(TypeError, match="dtype"):
        monotonic_attention_forward(p, a.astype(np.float32))
    with pytest.raises(ValueError, match=r"^chunk_size:"):
        mocha_chunk_forward(a, u, chunk_size=0)
    with pytest.raises(TypeError, match=r"^chunk_size:"):
        mocha_chunk_forward(a, u, chunk_size=2.0)
    with pytest.raises(ValueError, match=r"^lengths:"):
        mocha_chunk_forward(a, u, chunk_size=2, lengths=np.array([9, 1, 1]))
    with pytest.raises(ValueError, match=r"^backend:"):
        mocha_chunk_forward(a, u, chunk_size=2, backend="cuda")
    with pytest.raises(ValueError, match=r"^dalpha:"):
        monotonic_attention_backward(np.ones((2, 2)), monotonic_attention_forward(p, a)[1])
    with pytest.raises(ValueError, match=r"^t_prev:"):
        hard_monotonic_attention(u, u, np.array([9, 0, 0]), chunk_size=2)


def test_ops_do_not_write_into_arguments(rng):
    p, a, u, L = _parity_inputs(rng)
    copies = [x.copy() for x in (p, a, u)]
    for mode in ("recursive", "parallel"):
        alpha, c = monotonic_attention_forward(p, a, mode=mode, lengths=L)
        d = np.ones_like(alpha)
        monotonic_attention_backward(d, c)
        assert np.all(d == 1)
    beta, c = mocha_chunk_forward(a, u, chunk_size=2, lengths=L)
    mocha_chunk_backward(np.ones_like(beta), c)
    assert all(np.array_equal(x, y) for x, y in zip((p, a, u), copies))
