"""LSTM pairs: finite differences (float64, ragged lengths), masking, NumPy/Numba parity, validation."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from scratchasr.ops.lstm import (_cell_backward_numpy, _cell_forward_numpy, lstm_backward, lstm_forward,
                                 lstm_step_backward, lstm_step_forward)
from scratchasr.kernels.lstm import lstm_cell_backward_kernel, lstm_cell_forward_kernel
from scratchasr.testing import gradcheck
from scratchasr.testing.reference import lstm_naive

# L sums B*T*H products, so its float64 round-off is a few 1e-16 * |L| / h ~ 1e-10 in the
# finite-difference quotient; atol 1e-9 sits just above that floor, rtol is STYLE's 1e-6.
RTOL, ATOL = 1e-6, 1e-9


def _params(rng, B, T, D, H, dtype=np.float64):
    x = rng.standard_normal((B, T, D)).astype(dtype)
    h0 = rng.standard_normal((B, H)).astype(dtype)
    c0 = rng.standard_normal((B, H)).astype(dtype)
    W_ih = (0.5 * rng.standard_normal((4 * H, D))).astype(dtype)
    W_hh = (0.5 * rng.standard_normal((4 * H, H))).astype(dtype)
    b = (0.3 * rng.standard_normal(4 * H)).astype(dtype)
    return x, h0, c0, W_ih, W_hh, b


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_forward_matches_naive_loop(rng, reverse, backend):
    x, h0, c0, W_ih, W_hh, b = _params(rng, 4, 7, 3, 5)
    lengths = np.array([7, 4, 0, 1])
    y, (hn, cn), _ = lstm_forward(x, lengths, h0, c0, W_ih, W_hh, b, reverse=reverse, backend=backend)
    y_ref, hn_ref, cn_ref = lstm_naive(x, lengths, h0, c0, W_ih, W_hh, b, reverse)
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(hn, hn_ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(cn, cn_ref, rtol=1e-12, atol=1e-14)
    assert np.all(y[np.arange(7)[None, :] >= lengths[:, None]] == 0)


@pytest.mark.parametrize("shape,lengths", [((2, 5, 3, 4), [5, 3]), ((3, 6, 2, 3), [2, 6, 0]),
                                           ((1, 4, 4, 2), [4])])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_gradcheck_sequence(rng, shape, lengths, reverse, backend):
    B, T, D, H = shape
    lengths = np.array(lengths)
    inputs = _params(rng, B, T, D, H)

    def fwd(x, h0, c0, W_ih, W_hh, b):
        return lstm_forward(x, lengths, h0, c0, W_ih, W_hh, b, reverse=reverse, backend=backend)

    report = gradcheck(fwd, lambda d, c: lstm_backward(d, c), inputs, rtol=RTOL, atol=ATOL,
                       names=["x", "h0", "c0", "W_ih", "W_hh", "b"])
    assert report.ok, str(report)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_gradcheck_final_states(rng, reverse, backend):
    """Gradients entering through h_n and c_n only (dh = 0)."""
    B, T, D, H = 3, 6, 3, 4
    lengths = np.array([3, 6, 0])
    inputs = _params(rng, B, T, D, H)

    def fwd(x, h0, c0, W_ih, W_hh, b):
        _, (hn, cn), cache = lstm_forward(x, lengths, h0, c0, W_ih, W_hh, b, reverse=reverse, backend=backend)
        return np.concatenate([hn, cn], axis=1), cache

    def bwd(d, cache):
        return lstm_backward(np.zeros((B, T, H)), cache, d[:, :H], d[:, H:])

    report = gradcheck(fwd, bwd, inputs, rtol=RTOL, atol=ATOL)
    assert report.ok, str(report)


def test_padded_gradients_exactly_zero_and_nan_padding_safe(rng):
    B, T, D, H = 3, 6, 3, 4
    lengths = np.array([6, 2, 0])
    x, h0, c0, W_ih, W_hh, b = _params(rng, B, T, D, H)
    pad = np.arange(T)[None, :] >= lengths[:, None]
    x_nan = x.copy()
    x_nan[pad] = np.nan
    for backend in ("numpy", "numba"):
        for reverse in (False, True):
            y, (hn, cn), cache = lstm_forward(x_nan, lengths, h0, c0, W_ih, W_hh, b, reverse=reverse,
                                              backend=backend)
            y2, _, _ = lstm_forward(x, lengths, h0, c0, W_ih, W_hh, b, reverse=reverse, backend=backend)
            assert np.all(np.isfinite(y)) and np.array_equal(y, y2)
            dh = rng.standard_normal(y.shape)
            dh[pad] = np.nan  # gradients given for padded outputs are ignored
            grads = lstm_backward(dh, cache, np.ones((B, H)), np.ones((B, H)))
            assert all(np.all(np.isfinite(g)) for g in grads)
            assert np.all(grads[0][pad] == 0)
            # a zero-length sequence passes its final-state gradient straight to h0, c0
            np.testing.assert_array_equal(grads[1][2], 1.0)
            np.testing.assert_array_equal(grads[2][2], 1.0)


def test_step_matches_sequence_and_gradcheck(rng):
    B, D, H = 3, 4, 5
    x, h0, c0, W_ih, W_hh, b = _params(rng, B, 1, D, H)
    h, c, _ = lstm_step_forward(x[:, 0], h0, c0, W_ih, W_hh, b)
    y, (hn, cn), _ = lstm_forward(x, None, h0, c0, W_ih, W_hh, b)
    np.testing.assert_allclose(h, y[:, 0], rtol=1e-13)
    np.testing.assert_allclose(c, cn, rtol=1e-13)
    for backend in ("numpy", "numba"):
        def fwd(x, h_prev, c_prev, W_ih, W_hh, b):
            h, c, cache = lstm_step_forward(x, h_prev, c_prev, W_ih, W_hh, b, backend=backend)
            return np.concatenate([h, c], axis=1), cache

        report = gradcheck(fwd, lambda d, cache: lstm_step_backward(d[:, :H], d[:, H:], cache),
                           [x[:, 0], h0, c0, W_ih, W_hh, b], rtol=1e-7, atol=ATOL)
        assert report.ok, str(report)


def _cell_args(rng, B, H, dtype):
    a = np.tanh(2 * rng.standard_normal((B, 4 * H))).astype(dtype)  # tanh(s * a), the kernel input
    h_prev, c_prev = rng.standard_normal((2, B, H)).astype(dtype)
    valid = (np.arange(B) % 3 != 1).astype(np.uint8)
    a[valid == 0] = np.nan  # padded rows are never read
    return a, h_prev, c_prev, valid


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-10), (np.float32, 1e-5)])
def test_kernel_parity(rng, dtype, rtol):
    B, H = 5, 7
    a, h_prev, c_prev, valid = _cell_args(rng, B, H, dtype)
    outs = []
    for fwd in (_cell_forward_numpy, lstm_cell_forward_kernel):
        o = [np.empty((B, 4 * H), dtype)] + [np.empty((B, H), dtype) for _ in range(4)]
        fwd(a, h_prev, c_prev, valid, *o)
        outs.append(o)
    for p, q in zip(*outs):
        np.testing.assert_allclose(q, p, rtol=rtol, atol=rtol * 1e-2)
    gates, _, _, tanh_c, _ = outs[0]
    dy, dh_next, dc_next = rng.standard_normal((3, B, H)).astype(dtype)
    grads = []
    for bwd in (_cell_backward_numpy, lstm_cell_backward_kernel):
        g = [np.empty((B, 4 * H), dtype), np.empty((B, H), dtype), np.empty((B, H), dtype)]
        bwd(dy, dh_next, dc_next, gates, c_prev, tanh_c, valid, *g)
        grads.append(g)
    for p, q in zip(*grads):
        np.testing.assert_allclose(q, p, rtol=rtol, atol=rtol * 1e-2)


@pytest.mark.parametrize("reverse", [False, True])
def test_backend_parity_sequence(rng, reverse):
    x, h0, c0, W_ih, W_hh, b = _params(rng, 3, 8, 4, 6)
    lengths = np.array([8, 5, 1])
    res = {}
    for backend in ("numpy", "numba"):
        y, (hn, cn), cache = lstm_forward(x, lengths, h0, c0, W_ih, W_hh, b, reverse=reverse, backend=backend)
        dh = np.random.default_rng(1).standard_normal(y.shape)
        res[backend] = (y, hn, cn) + lstm_backward(dh, cache, hn, cn)
    for p, q in zip(res["numpy"], res["numba"]):
        np.testing.assert_allclose(q, p, rtol=1e-10, atol=1e-13)


def test_parity_without_jit():
    """The kernels' Python bodies (NUMBA_DISABLE_JIT=1) agree with the NumPy twins."""
    code = (
        "import numpy as np, sys\n"
        "from tests.ops_lstm.test_lstm import test_kernel_parity, test_backend_parity_sequence\n"
        "for dt, r in ((np.float64, 1e-10), (np.float32, 1e-5)):\n"
        "    test_kernel_parity(np.random.default_rng(0), dt, r)\n"
        "test_backend_parity_sequence(np.random.default_rng(0), True)\n"
        "print('ok')\n")
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr


def test_float32_forward_close_to_float64(rng):
    p64 = _params(rng, 2, 5, 3, 4)
    p32 = [a.astype(np.float32) for a in p64]
    lengths = np.array([5, 3])
    y64, _, _ = lstm_forward(p64[0], lengths, *p64[1:])
    y32, _, c32 = lstm_forward(p32[0], lengths, *p32[1:])
    assert y32.dtype == np.float32 and c32.gates.dtype == np.float32
    np.testing.assert_allclose(y32, y64, rtol=1e-4, atol=1e-5)


def test_bad_input_raises(rng):
    x, h0, c0, W_ih, W_hh, b = _params(rng, 2, 5, 3, 4)
    with pytest.raises(ValueError, match=r"^W_hh:"):
        lstm_forward(x, None, h0, c0, W_ih, W_hh[:, :3], b)
    with pytest.raises(ValueError, match=r"^lengths:"):
        lstm_forward(x, np.array([6, 1]), h0, c0, W_ih, W_hh, b)
    with pytest.raises(TypeError, match="dtype"):
        lstm_forward(x.astype(np.float32), None, h0, c0, W_ih, W_hh, b)
    with pytest.raises(ValueError, match=r"^backend:"):
        lstm_forward(x, None, h0, c0, W_ih, W_hh, b, backend="cuda")
    with pytest.raises(ValueError, match=r"^x:"):
        lstm_forward(x[0], None, h0, c0, W_ih, W_hh, b)
    _, _, cache = lstm_forward(x, None, h0, c0, W_ih, W_hh, b)
    with pytest.raises(ValueError, match=r"^dh:"):
        lstm_backward(np.zeros((2, 5, 3)), cache)


@pytest.mark.parametrize("reverse", [False, True])
def test_full_length_and_empty_time(rng, reverse):
    """All sequences full length (the flip fast path) equals the gather path; T = 0 is allowed."""
    x, h0, c0, W_ih, W_hh, b = _params(rng, 2, 4, 3, 3)
    y, (hn, cn), cache = lstm_forward(x, np.array([4, 4]), h0, c0, W_ih, W_hh, b, reverse=reverse)
    y_ref, hn_ref, cn_ref = lstm_naive(x, np.array([4, 4]), h0, c0, W_ih, W_hh, b, reverse)
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-14)
    y0, (hn0, cn0), cache0 = lstm_forward(x[:, :0], np.array([0, 0]), h0, c0, W_ih, W_hh, b, reverse=reverse)
    assert y0.shape == (2, 0, 3) and np.array_equal(hn0, h0) and np.array_equal(cn0, c0)
    g = lstm_backward(np.zeros((2, 0, 3)), cache0, np.ones((2, 3)), None)
    assert g[0].shape == (2, 0, 3) and np.all(g[1] == 1) and np.all(g[3] == 0)
