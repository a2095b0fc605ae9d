"""Fused SDPA softmax kernels (kernels/attention.py) against their NumPy twins, the written-out exp against
NumPy's, and sdpa_forward/backward with backend="numba" against the readable reference (backend="numpy")."""

from __future__ import annotations

import numpy as np
import pytest

from scratchasr.kernels.attention import _exp_like, softmax_rows_backward_kernel, softmax_rows_kernel
from scratchasr.kernels._njit import njit
from scratchasr.ops import attention
from scratchasr.ops.attention import (_softmax_rows_backward_numpy, _softmax_rows_numpy, padding_mask,
                                      sdpa_backward, sdpa_forward)


@njit(error_model="numpy")
def _exp_all(x, out):
    for i in range(x.shape[0]):
        out[i] = _exp_like(x[i])


@pytest.mark.parametrize("dtype,lo,rtol", [(np.float64, -700.0, 1e-13), (np.float32, -85.0, 5e-7)])
def test_exp_matches_numpy(dtype, lo, rtol):
    x = np.concatenate([np.linspace(lo, 0.0, 20001), -np.geomspace(1e-12, 1.0, 200)]).astype(dtype)
    out = np.empty_like(x)
    _exp_all(x, out)
    np.testing.assert_allclose(out, np.exp(x.astype(np.float64)), rtol=rtol, atol=0)
    special = np.array([-np.inf, -1e4, 0.0, np.nan], dtype)
    _exp_all(special, out[:4])
    assert out[0] == 0 and out[1] == 0 and out[2] == 1 and np.isnan(out[3])


def _scores(rng, R, Tk, dtype):
    s = (3 * rng.standard_normal((R, Tk))).astype(dtype)
    mask = rng.random((R, Tk)) < 0.7
    mask[1] = False  # a row with no allowed key
    s[~mask] = np.nan  # masked scores are never read
    return s, mask


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("masked", [False, True])
def test_softmax_kernels_match_numpy_twins(rng, dtype, rtol, masked):
    R, Tk = 7, 19  # Tk not a multiple of the max's eight chains
    s, mask = _scores(rng, R, Tk, dtype)
    if not masked:
        s, mask = np.where(mask, s, 0.5).astype(dtype), None
    ps = []
    for fwd in (_softmax_rows_numpy, softmax_rows_kernel):
        p = s.copy()
        assert fwd(p, mask)  # in place
        ps.append(p)
    np.testing.assert_allclose(ps[1], ps[0], rtol=rtol, atol=rtol * 1e-3)
    p = ps[0]
    if masked:
        assert np.all(p[~mask] == 0) and np.all(p[1] == 0)
        np.testing.assert_allclose(p[mask.any(1)].sum(1), 1, rtol=rtol)
    dp = rng.standard_normal((R, Tk)).astype(dtype)
    dp[p == 0] = np.nan  # e.g. a NaN value row the forward never read
    dss = []
    for bwd in (_softmax_rows_backward_numpy, softmax_rows_backward_kernel):
        ds = dp.copy()
        bwd(ds, p, dtype(0.25))
        dss.append(ds)
    np.testing.assert_allclose(dss[1], dss[0], rtol=rtol, atol=rtol * 1e-3)
    assert np.all(np.isfinite(dss[1])) and np.all(dss[1][p == 0] == 0)


@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_softmax_kernel_refuses_scores_for_the_exact_path(rng, bad):
    s, mask = _scores(rng, 4, 9, np.float64)
    s[2, np.argmax(mask[2])] = bad  # an allowed score
    for fwd in (_softmax_rows_numpy, softmax_rows_kernel):
        assert not fwd(s.copy(), mask)


@pytest.mark.parametrize("blocks", [False, True])
@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-10), (np.float32, 1e-5)])
def test_sdpa_numba_equals_reference(rng, dtype, rtol, blocks, monkeypatch):
    """Both fused paths: batched (small score matrices) and one (b, h) block at a time (large ones)."""
    monkeypatch.setattr(attention, "_BLOCK_MIN", 0 if blocks else 10 ** 9)
    B, H, T, d = 2, 3, 6, 4
    q, k, v = (rng.standard_normal((B, H, T, d)).astype(dtype) for _ in range(3))
    lengths = np.array([6, 3])
    k[1, :, 3:] = np.nan  # padding
    v[1, :, 3:] = np.nan
    dout = rng.standard_normal((B, H, T, d)).astype(dtype)
    for mask in (padding_mask(lengths, T), padding_mask(lengths, T, queries=True)):
        res = {}
        for backend in ("numpy", "numba"):
            out, cache = sdpa_forward(q, k, v, mask, backend=backend)
            assert cache.backend == backend
            res[backend] = (out,) + sdpa_backward(dout, cache)
        for a, b in zip(res["numpy"], res["numba"]):
            assert np.all(np.isfinite(b))
            np.testing.assert_allclose(b, a, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("blocks", [False, True])
def test_sdpa_overflowing_scores_take_the_exact_path(rng, blocks, monkeypatch):
    monkeypatch.setattr(attention, "_BLOCK_MIN", 0 if blocks else 10 ** 9)
    q, k, v = (rng.standard_normal((1, 1, 3, 2)) for _ in range(3))
    q[..., 0] += 1e160  # scores ~1e320: inf in float64
    k[..., 0] += 1e160
    out, cache = sdpa_forward(q, k, v)  # default backend: numba, falls back
    ref, _ = sdpa_forward(q, k, v, backend="numpy")
    assert cache.backend == "numpy" and np.all(np.isfinite(out))
    np.testing.assert_array_equal(out, ref)


def test_sdpa_bad_backend(rng):
    q = rng.standard_normal((1, 1, 2, 2))
    with pytest.raises(ValueError, match=r"^backend:"):
        sdpa_forward(q, q, q, backend="cuda")
