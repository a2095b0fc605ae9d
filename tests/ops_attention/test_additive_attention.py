"""Additive and location-aware step attention: finite differences, masking, a naive oracle."""

from __future__ import annotations

import numpy as np
import pytest

from scratchasr.ops.additive_attention import (additive_attention_backward, additive_attention_forward,
                                               location_attention_backward, location_attention_forward)
from scratchasr.testing import gradcheck
from scratchasr.testing.reference import location_attention_naive

B, T, Dq, A, Dv, C, K = 2, 6, 3, 4, 3, 2, 3
LENGTHS = np.array([6, 4])
ATOL = 1e-9  # the float64 round-off floor of the finite-difference quotient


def _inputs(rng, location):
    query = rng.standard_normal((B, Dq))
    keys = rng.standard_normal((B, T, A))
    values = rng.standard_normal((B, T, Dv))
    W_q, w = 0.7 * rng.standard_normal((A, Dq)), rng.standard_normal(A)
    if not location:
        return [query, keys, values, LENGTHS, W_q, w]
    alpha_prev = rng.dirichlet(np.ones(T), size=B)
    F, U = rng.standard_normal((C, K)), rng.standard_normal((A, C))
    return [query, keys, values, alpha_prev, LENGTHS, W_q, w, F, U]


def _both(fwd, bwd, smoothing):
    """Check context and alpha together: out = [context, alpha], dout split back into both."""
    def f(*a):
        c, al, cache = fwd(*a, smoothing=smoothing)
        return np.concatenate([c, al], axis=1), cache

    def b(d, cache):
        return bwd(d[:, :Dv], cache, d[:, Dv:])
    return f, b


@pytest.mark.parametrize("smoothing", [False, True])
@pytest.mark.parametrize("location", [False, True])
def test_gradcheck(rng, smoothing, location):
    fwd, bwd = ((location_attention_forward, location_attention_backward) if location else
                (additive_attention_forward, additive_attention_backward))
    f, b = _both(fwd, bwd, smoothing)
    report = gradcheck(f, b, _inputs(rng, location), rtol=1e-6, atol=ATOL)
    assert report.ok, str(report)


@pytest.mark.parametrize("smoothing", [False, True])
def test_matches_naive_and_masks_padding(rng, smoothing):
    inp = _inputs(rng, True)
    ctx, alpha, cache = location_attention_forward(*inp, smoothing=smoothing)
    ref_ctx, ref_alpha = location_attention_naive(*inp, smoothing=smoothing)
    np.testing.assert_allclose(alpha, ref_alpha, rtol=1e-12)
    np.testing.assert_allclose(ctx, ref_ctx, rtol=1e-12)
    assert np.all(alpha[1, 4:] == 0)
    # NaN in padded frames stays out; padded inputs get exactly zero gradient
    bad = [a.copy() if isinstance(a, np.ndarray) else a for a in inp]
    for i in (1, 2, 3):
        bad[i][1, 4:] = np.nan
    ctx2, alpha2, cache2 = location_attention_forward(*bad, smoothing=smoothing)
    np.testing.assert_array_equal(ctx2, ctx)
    grads = location_attention_backward(rng.standard_normal(ctx.shape), cache2,
                                        rng.standard_normal(alpha.shape))
    assert all(np.all(np.isfinite(g)) for g in grads)
    for g in grads[1:4]:
        assert np.all(g[1, 4:] == 0)


def test_zero_length_gives_zero_context(rng):
    inp = _inputs(rng, False)
    inp[3] = np.array([0, 3])
    ctx, alpha, cache = additive_attention_forward(*inp)
    assert np.all(ctx[0] == 0) and np.all(alpha[0] == 0)
    grads = additive_attention_backward(np.ones_like(ctx), cache)
    assert all(np.all(np.isfinite(g)) for g in grads) and np.all(grads[0][0] == 0)


def test_bad_input(rng):
    inp = _inputs(rng, True)
    with pytest.raises(ValueError, match=r"^F:"):
        location_attention_forward(*inp[:7], inp[7][:, :2], inp[8])
    with pytest.raises(ValueError, match=r"^alpha_prev:"):
        location_attention_forward(inp[0], inp[1], inp[2], inp[3][:, :2], *inp[4:])
    with pytest.raises(ValueError, match=r"^W_q:"):
        additive_attention_forward(*_inputs(rng, False)[:4], np.zeros((A, Dq + 1)), inp[6])
