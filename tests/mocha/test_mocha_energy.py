"""Monotonic and chunk energies, noisy selection probability: finite differences, padding, extremes."""

from __future__ import annotations

import numpy as np
import pytest

from scratchasr.ops.mocha_energy import (chunk_energy_backward, chunk_energy_forward,
                                         monotonic_energy_backward, monotonic_energy_forward,
                                         monotonic_probability_backward, monotonic_probability_forward,
                                         sigmoid)
from scratchasr.testing import gradcheck

RTOL, ATOL = 1e-7, 1e-9  # STYLE: a single smooth op


def _inputs(rng, B, T, Dq, A, lengths, nan_pad=False):
    query = rng.standard_normal((B, Dq))
    keys = rng.standard_normal((B, T, A))
    if nan_pad:
        for b, L in enumerate(lengths):
            keys[b, L:] = np.nan
    W_q = 0.5 * rng.standard_normal((A, Dq))
    v = rng.standard_normal(A)
    return query, keys, W_q, v


def _zero_pad_grads(grad_keys, lengths):
    for b, L in enumerate(lengths):
        assert np.all(grad_keys[b, L:] == 0)


@pytest.mark.parametrize("B,T,Dq,A,lengths", [(2, 5, 3, 4, [5, 3]), (3, 7, 2, 3, [7, 1, 6]),
                                              (1, 6, 4, 2, [6])])
def test_monotonic_energy_gradcheck(B, T, Dq, A, lengths):
    rng = np.random.default_rng(T * A)
    q, k, W, v = _inputs(rng, B, T, Dq, A, lengths)
    g, r = np.array(1.3), np.array(-0.7)
    L = np.array(lengths)
    fwd = lambda *x: monotonic_energy_forward(*x, lengths=L)  # noqa: E731
    rep = gradcheck(fwd, monotonic_energy_backward, [q, k, W, v, g, r],
                    names=["query", "keys", "W_q", "v", "g", "r"], rtol=RTOL, atol=ATOL)
    assert rep.ok, str(rep)
    e, c = fwd(q, k, W, v, g, r)
    grads = monotonic_energy_backward(rng.standard_normal(e.shape), c)
    _zero_pad_grads(grads[1], lengths)
    # weight normalisation: rescaling v changes nothing, so dv is orthogonal to v
    assert abs(grads[3] @ v) < 1e-10 * np.linalg.norm(grads[3]) * np.linalg.norm(v) + 1e-14
    e2, _ = fwd(q, k, W, 5.0 * v, g, r)
    np.testing.assert_allclose(e2, e, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("B,T,Dq,A,lengths", [(2, 5, 3, 4, [5, 3]), (3, 7, 2, 3, [7, 1, 6])])
def test_chunk_energy_gradcheck(B, T, Dq, A, lengths):
    rng = np.random.default_rng(T + A)
    q, k, W, v = _inputs(rng, B, T, Dq, A, lengths)
    L = np.array(lengths)
    fwd = lambda *x: chunk_energy_forward(*x, lengths=L)  # noqa: E731
    rep = gradcheck(fwd, chunk_energy_backward, [q, k, W, v], names=["query", "keys", "W_q", "v"],
                    rtol=RTOL, atol=ATOL)
    assert rep.ok, str(rep)
    u, c = fwd(q, k, W, v)
    _zero_pad_grads(chunk_energy_backward(rng.standard_normal(u.shape), c)[1], lengths)


def test_energies_match_direct_formula_and_ignore_nan_padding(rng):
    lengths = [5, 2]
    q, k, W, v = _inputs(rng, 2, 5, 3, 4, lengths, nan_pad=True)
    e, _ = monotonic_energy_forward(q, k, W, v, np.array(0.5), np.array(-4.0), lengths=np.array(lengths))
    u, _ = chunk_energy_forward(q, k, W, v, lengths=np.array(lengths))
    for b, L in enumerate(lengths):
        for j in range(5):
            if j < L:
                z = np.tanh(W @ q[b] + k[b, j])
                assert np.isclose(e[b, j], 0.5 * v @ z / np.sqrt(v @ v) - 4.0, rtol=1e-13)
                assert np.isclose(u[b, j], v @ z, rtol=1e-13)
            else:
                assert e[b, j] == 0 and u[b, j] == 0


@pytest.mark.parametrize("noise_std", [0.0, 1.5])
def test_probability_gradcheck(noise_std):
    rng = np.random.default_rng(3)
    e = 2 * rng.standard_normal((2, 6))
    L = np.array([6, 4])
    def fwd(e):  # a fresh generator with the same seed: the same noise on every call
        return monotonic_probability_forward(e, noise_std=noise_std, rng=np.random.default_rng(9), lengths=L)

    rep = gradcheck(fwd, monotonic_probability_backward, [e], rtol=RTOL, atol=ATOL)
    assert rep.ok, str(rep)
    p, c = fwd(e)
    assert np.all(p[1, 4:] == 0)
    assert np.all(monotonic_probability_backward(np.ones_like(p), c)[1, 4:] == 0)


def test_noise_is_explicit_and_seeded():
    e = np.zeros((3, 50))
    p0, _ = monotonic_probability_forward(e)
    assert np.all(p0 == 0.5)
    p1, c1 = monotonic_probability_forward(e, noise_std=2.0, rng=np.random.default_rng(1))
    p2, _ = monotonic_probability_forward(e, noise_std=2.0, rng=np.random.default_rng(1))
    assert np.array_equal(p1, p2) and not np.array_equal(p1, p0)
    np.testing.assert_allclose(p1, sigmoid(c1.noise))
    # large noise pushes p towards {0, 1}
    assert np.mean(np.minimum(p1, 1 - p1)) < np.mean(np.minimum(p0, 1 - p0))
    with pytest.raises(TypeError, match=r"^rng:"):
        monotonic_probability_forward(e, noise_std=1.0)
    with pytest.raises(ValueError, match=r"^noise_std:"):
        monotonic_probability_forward(e, noise_std=-1.0)


def test_extreme_energies_finite():
    e = np.array([[-1000.0, -300, 0, 300, 1000]])
    for dtype in (np.float64, np.float32):
        with np.errstate(over="raise"):
            p, c = monotonic_probability_forward(e.astype(dtype))
        assert p.dtype == dtype and np.all(np.isfinite(p))
        assert p[0, 0] >= 0 and p[0, 4] == 1.0 and p[0, 2] == 0.5
        assert np.all(np.isfinite(monotonic_probability_backward(np.ones_like(p), c)))


def test_bad_input(rng):
    q, k, W, v = _inputs(rng, 2, 5, 3, 4, [5, 5])
    with pytest.raises(ValueError, match=r"^g:"):
        monotonic_energy_forward(q, k, W, v, np.array([1.0]), np.array(0.0))
    with pytest.raises(ValueError, match=r"^W_q:"):
        chunk_energy_forward(q, k, W.T, v)
    with pytest.raises(TypeError, match=r"^expected one floating dtype for all arrays, got query=float32, "
                                        r"keys=float64"):
        chunk_energy_forward(q.astype(np.float32), k, W, v)
