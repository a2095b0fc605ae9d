"""Whole-sequence LSTM kernels (kernels/lstm.py) against their NumPy twins, the vectorisable tanh against
NumPy's, the register-blocked recurrent GEMM against BLAS, and the bidirectional layer against two
single-direction calls."""

from __future__ import annotations

import numpy as np
import pytest

from scratchasr.kernels.lstm import (_tanh, lstm_sequence_backward_kernel, lstm_sequence_forward_kernel,
                                     matmul_bt_kernel)
from scratchasr.ops.lstm import _sequence_backward_numpy, _sequence_forward_numpy


def test_tanh_matches_numpy_to_a_few_ulp():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(2000) * s for s in (1e-300, 1e-9, 1e-3, 0.1, 0.5, 1, 4, 30)])
    ours = np.array([_tanh(v) for v in x])
    np.testing.assert_allclose(ours, np.tanh(x), rtol=2e-15, atol=0)
    special = np.array([0.0, -0.0, np.inf, -np.inf, 19.0, -19.5, 25.0, 1e300])
    got = np.array([_tanh(v) for v in special])
    np.testing.assert_array_equal(got, np.tanh(special))
    assert np.signbit(got[1])  # tanh(-0) = -0
    assert np.isnan(_tanh(np.nan))  # NaN propagates (is not clamped to +-1)


@pytest.mark.parametrize("B,K,N", [(8, 16, 64), (5, 7, 10), (1, 3, 1), (4, 1, 4), (0, 3, 4)])
@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-13), (np.float32, 1e-5)])
def test_matmul_bt_matches_blas(B, K, N, dtype, rtol):
    rng = np.random.default_rng(1)
    X, M = rng.standard_normal((B, K)).astype(dtype), rng.standard_normal((N, K)).astype(dtype)
    out = np.full((B, N), np.nan, dtype)
    matmul_bt_kernel(X, M, out)
    np.testing.assert_allclose(out, X @ M.T, rtol=rtol, atol=rtol * 10)


def _sequence_args(rng, B, T, H, dtype, lengths):
    xproj = rng.standard_normal((T, B, 4 * H)).astype(dtype)  # time-major
    valid = (np.arange(T)[None, :] < np.asarray(lengths)[:, None]).astype(np.uint8)  # (B, T)
    xproj[valid.T == 0] = np.nan  # padded steps are never read
    bias = (0.3 * rng.standard_normal(4 * H)).astype(dtype)
    W = (0.4 * rng.standard_normal((4 * H, H))).astype(dtype)
    h0, c0 = rng.standard_normal((2, B, H)).astype(dtype)
    return xproj, bias, W, h0, c0, valid


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-10), (np.float32, 1e-5)])
def test_sequence_kernels_match_numpy_twins(rng, reverse, dtype, rtol):
    B, T, H = 5, 6, 3  # B, 4H not multiples of the GEMM's 4 x 4 blocks everywhere
    lengths = [6, 3, 0, 1, 6]
    xproj, bias, W, h0, c0, valid = _sequence_args(rng, B, T, H, dtype, lengths)
    outs = []
    for fwd in (_sequence_forward_numpy, lstm_sequence_forward_kernel):
        gates = xproj.copy()  # in: the input projection; out: the gates
        shapes = [(T, B, H), (T, B, H), (T, B, H), (B, T, H), (B, H), (B, H)]
        o = [np.full(s, 7.0, dtype) for s in shapes]  # hprev, cprev, tanh_c, y, h_n, c_n
        fwd(gates, bias, W, h0, c0, valid, reverse, *o)
        outs.append([gates] + o)
    for p, q in zip(*outs):
        assert np.all(np.isfinite(q))
        np.testing.assert_allclose(q, p, rtol=rtol, atol=rtol * 1e-2)
    gates, hprev, cprev, tanh_c, y, h_n, c_n = outs[0]
    assert np.all(y[valid == 0] == 0) and np.all(gates[valid.T == 0] == 0)
    np.testing.assert_array_equal(h_n[2], h0[2])  # a zero-length sequence keeps its initial state
    dy = rng.standard_normal((B, T, H)).astype(dtype)
    dy[valid == 0] = np.nan  # gradients of padded outputs are ignored
    dh_n, dc_n = rng.standard_normal((2, B, H)).astype(dtype)
    W_T = np.ascontiguousarray(W.T)
    grads = []
    for bwd in (_sequence_backward_numpy, lstm_sequence_backward_kernel):
        g = [np.full((T, B, 4 * H), 7.0, dtype), np.full((B, H), 7.0, dtype), np.full((B, H), 7.0, dtype)]
        bwd(dy, dh_n, dc_n, W_T, gates, cprev, tanh_c, valid, reverse, *g)
        grads.append(g)
    for p, q in zip(*grads):
        assert np.all(np.isfinite(q))
        np.testing.assert_allclose(q, p, rtol=rtol, atol=rtol * 1e-2)
    assert np.all(grads[1][0][valid.T == 0] == 0)
    np.testing.assert_array_equal(grads[1][1][2], dh_n[2])  # passed straight through
