"""The AVX-512 VNNI int8 path (kernels/int8_vnni.py): exact parity with the NumPy twins and with int64 sums on
ragged shapes, the unsigned-offset wrap-around [conformer:int8-offset], the packed layout
[conformer:int8-pack], whole-model equality with the NumPy path, and the fallback when VNNI is absent."""

import numba
import numpy as np
import pytest

from scratchasr import models
from scratchasr.data.batch import make_batch
from scratchasr.kernels import int8_vnni
from scratchasr.nn import conformer_int8 as q8
from scratchasr.nn.conformer_int8 import Int8Linear, int8_matmul, quantize_int8

needs_vnni = pytest.mark.skipif(not q8.vnni_available(), reason="no AVX-512 VNNI on this CPU (or JIT off)")

# N covers tiles of 8, 4 and 1 rows; O covers full groups of 48, single vectors and a partial last vector;
# K covers multiples of 4 and not
SHAPES = [(0, 5, 3), (1, 1, 1), (7, 5, 3), (13, 33, 17), (9, 3, 50), (21, 8, 100), (8, 4, 48), (12, 144, 64),
          (5, 7, 0)]


def _operands(N, K, n_out, seed=0):
    rng = np.random.default_rng(seed)
    xq = rng.integers(-127, 128, (N, K)).astype(np.int8)
    wq = rng.integers(-127, 128, (n_out, K)).astype(np.int8)
    if N and K and n_out:
        xq[0], wq[0] = 127, -127  # extremes
        xq[-1, -1], wq[-1, 0] = -127, 127
    return xq, wq


@pytest.mark.parametrize("shape", SHAPES)
def test_pack_unpack_round_trip_and_layout(shape):
    _, K, n_out = shape
    _, wq = _operands(1, K, n_out)
    wp, corr = q8.pack_weight_vnni(wq)
    Kp = -(-K // 4) * 4
    assert wp.dtype == np.int8 and wp.size == -(-n_out // 16) * 16 * Kp
    np.testing.assert_array_equal(corr, 128 * wq.astype(np.int64).sum(axis=1))
    w = q8.unpack_weight_vnni(wp, n_out, Kp)
    np.testing.assert_array_equal(w[:, :K], wq)
    assert np.all(w[:, K:] == 0)
    if n_out >= 48 and K >= 4:  # the first 64 bytes: outputs 0..15 at k = 0..3 [conformer:int8-pack]
        np.testing.assert_array_equal(wp[:64].reshape(16, 4), wq[:16, :4])
        np.testing.assert_array_equal(wp[64:128].reshape(16, 4), wq[16:32, :4])


@needs_vnni
@pytest.mark.parametrize("shape", SHAPES)
def test_vnni_product_equals_int64_and_the_twins(shape):
    N, K, n_out = shape
    xq, wq = _operands(N, K, n_out)
    ref = xq.astype(np.int64) @ wq.astype(np.int64).T
    out = int8_matmul(xq, wq, backend="vnni")
    assert out.dtype == np.int32 and out.shape == (N, n_out)
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(int8_matmul(xq, wq), ref)  # the default picks VNNI here
    # kernel and twin on the same prepared arguments
    xu = np.full((N, -(-K // 4) * 4), 7, np.uint8)  # the K padding's value must not matter
    xu[:, :K] = (xq.astype(np.int16) + 128).astype(np.uint8)
    wp, corr = q8.pack_weight_vnni(wq)
    a, b = np.full((N, n_out), -1, np.int32), np.full((N, n_out), -2, np.int32)
    int8_vnni.int8_matmul_vnni_kernel(xu, wp, corr, a)
    q8.int8_matmul_vnni_numpy(xu, wp, corr, b)
    np.testing.assert_array_equal(a, ref)
    np.testing.assert_array_equal(b, ref)


@needs_vnni
def test_unsigned_sums_wrap_and_the_correction_stays_exact():
    K = 70_000  # 255 * 127 * K > 2**31: the unsigned sums wrap; the signed result 127**2 K < 2**31 does not
    xq = np.full((3, K), 127, np.int8)
    xq[1] = -127
    xq[2, ::2] = -127
    wq = np.full((2, K), 127, np.int8)
    wq[1] = -127
    ref = xq.astype(np.int64) @ wq.astype(np.int64).T
    assert np.abs(ref).max() < 2**31 and 255 * 127 * K > 2**31
    np.testing.assert_array_equal(int8_matmul(xq, wq, backend="vnni"), ref)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unsigned_row_quantisation_kernel_equals_its_twin(dtype):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((11, 9)) * rng.uniform(0.01, 5, (11, 1))).astype(dtype)
    x[0] = [127, 0.5, 1.5, -0.5, -2.5, 126.5, -127, 2.5, 0]  # scale 1 exactly: ties round half to even
    x[1] = 0  # scale 1, codes 128
    x[2, 3] = -1e3  # the largest magnitude is negative
    outs = []
    for fn in (int8_vnni.quantize_rows_u8_kernel, q8.quantize_rows_u8_numpy):
        ibits, mask = q8._SIGN_MASK[x.dtype.itemsize]
        xu, sx, amax = np.zeros((11, 12), np.uint8), np.zeros(11, np.float32), np.zeros(11, dtype)
        fn(x, x.view(ibits), mask, dtype(127), amax, amax.view(ibits), xu, sx)
        outs.append((xu, sx, amax))
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)
    xu, sx, _ = outs[0]
    np.testing.assert_array_equal(xu[0, :9].astype(int) - 128, [127, 0, 2, 0, -2, 126, -127, 2, 0])
    assert sx[1] == 1 and np.all(xu[1] == 128) and np.all(xu[:, 9:] == 128)
    xq, s = q8.quantize_rows(x)
    np.testing.assert_array_equal(xu[:, :9].astype(np.int16) - 128, xq)
    np.testing.assert_array_equal(sx, s)


@needs_vnni
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bias", [True, False])
def test_int8_linear_vnni_equals_the_numpy_path_exactly(dtype, bias):
    rng = np.random.default_rng(2)
    for N, K, n_out in [(13, 33, 17), (21, 40, 100), (9, 8, 48), (0, 6, 5)]:
        W = (rng.standard_normal((n_out, K)) * rng.uniform(0.1, 3, (n_out, 1))).astype(dtype)
        b = rng.standard_normal(n_out).astype(dtype) if bias else None
        x = (rng.standard_normal((N, K)) * rng.uniform(0.01, 5, (N, 1))).astype(dtype)
        y_vnni = Int8Linear(W, b, backend="vnni")(x)
        y_np = Int8Linear(W, b, backend="numpy")(x)
        y_fb = Int8Linear(W, b, backend="numba")(x)
        assert y_vnni.dtype == dtype and y_vnni.shape == (N, n_out)
        np.testing.assert_array_equal(y_vnni, y_np)
        np.testing.assert_array_equal(y_fb, y_np)
        # the fused kernel and its twin on the same prepared arguments
        lin = Int8Linear(W, b, backend="vnni")
        wp, corr = lin._packed()
        xu, sx = q8._u8_rows(x, "vnni")
        bb = b if bias else np.zeros(n_out, dtype)
        y1, y2 = np.full((N, n_out), np.nan, dtype), np.full((N, n_out), np.nan, dtype)
        int8_vnni.int8_linear_vnni_kernel(xu, sx, wp, corr, lin.buffers["scale"], bb, bias, y1)
        q8.int8_linear_vnni_numpy(xu, sx, wp, corr, lin.buffers["scale"], bb, bias, y2)
        np.testing.assert_array_equal(y1, y2)
        np.testing.assert_array_equal(y1, y_np)


@needs_vnni
def test_int8_linear_mixed_dtypes_match_the_numpy_path():
    rng = np.random.default_rng(6)
    W, b = rng.standard_normal((20, 12)).astype(np.float32), rng.standard_normal(20).astype(np.float32)
    x = rng.standard_normal((5, 12))
    for xx in (x.astype(np.float16), x.astype(np.float32), x):  # float16: the unfused path
        y = Int8Linear(W, b, backend="vnni")(xx)
        assert y.dtype == np.float32
        np.testing.assert_array_equal(y, Int8Linear(W, b, backend="numpy")(xx))


@needs_vnni
def test_packed_weights_follow_load_state_dict():
    rng = np.random.default_rng(3)
    W1, W2 = rng.standard_normal((2, 20, 12)).astype(np.float32)
    x = rng.standard_normal((9, 12)).astype(np.float32)
    lin = Int8Linear(W1, None, backend="vnni")
    y1 = lin(x)
    lin.load_state_dict(Int8Linear(W2, None).state_dict())  # copies into the W_q buffer in place
    np.testing.assert_array_equal(lin(x), Int8Linear(W2, None, backend="numpy")(x))
    assert not np.array_equal(lin(x), y1)
    assert set(lin.state_dict()) == {"W_q", "scale"}  # the packed copy is not state


@needs_vnni
def test_conformer_int8_model_is_identical_on_both_paths():
    m = models.build("conformer_ctc", input_dim=20, vocab_size=12, dtype=np.float32, seed=0, hidden=32,
                     num_layers=2, heads=4, ff_mult=4, conv_kernel=7, dropout=0.0, sub_channels=8)
    m.eval()
    rng = np.random.default_rng(4)
    batch = make_batch([rng.standard_normal((70, 20)).astype(np.float32),
                        rng.standard_normal((43, 20)).astype(np.float32)], [[1], [2]])
    lv, lv_len = quantize_int8(m).log_probs(batch)
    ln, ln_len = quantize_int8(m, backend="numpy").log_probs(batch)
    np.testing.assert_array_equal(lv_len, ln_len)
    np.testing.assert_array_equal(lv, ln)


def test_fallback_when_vnni_is_absent(monkeypatch):
    monkeypatch.setattr(int8_vnni, "VNNI", False)
    assert not q8.vnni_available()

    def refuse(*args):
        raise AssertionError("the VNNI kernel ran without VNNI")

    monkeypatch.setattr(int8_vnni, "int8_linear_vnni_kernel", refuse)
    monkeypatch.setattr(int8_vnni, "int8_matmul_vnni_kernel", refuse)
    xq, wq = _operands(13, 33, 17)
    np.testing.assert_array_equal(int8_matmul(xq, wq), xq.astype(np.int64) @ wq.astype(np.int64).T)
    with pytest.raises(ValueError, match=r"^backend:"):
        int8_matmul(xq, wq, backend="vnni")
    rng = np.random.default_rng(5)
    W, b = rng.standard_normal((17, 33)).astype(np.float32), rng.standard_normal(17).astype(np.float32)
    x = rng.standard_normal((2, 6, 33)).astype(np.float32)
    np.testing.assert_array_equal(Int8Linear(W, b)(x, np.array([6, 2])),
                                  Int8Linear(W, b, backend="numpy")(x, np.array([6, 2])))
    with pytest.raises(ValueError, match=r"^backend:"):
        Int8Linear(W, b, backend="vnni")(x)


def test_backend_names_are_checked():
    xq, wq = _operands(2, 3, 2)
    with pytest.raises(ValueError, match=r"^backend:"):
        int8_matmul(xq, wq, backend="avx")


def test_cpu_detection_follows_numba_target_settings(monkeypatch):
    monkeypatch.setattr(numba.config, "DISABLE_JIT", False)
    monkeypatch.setattr(numba.config, "CPU_NAME", None)
    monkeypatch.setattr(numba.config, "CPU_FEATURES", "+avx2,+avx512f,+avx512bw")
    assert not int8_vnni._host_has_vnni()
    monkeypatch.setattr(numba.config, "CPU_FEATURES", "+avx2,+avx512f,+avx512bw,+avx512vnni")
    assert int8_vnni._host_has_vnni()
    monkeypatch.setattr(numba.config, "CPU_FEATURES", None)
    monkeypatch.setattr(numba.config, "CPU_NAME", "generic")
    assert not int8_vnni._host_has_vnni()
    monkeypatch.setattr(numba.config, "CPU_NAME", None)
    monkeypatch.setattr(numba.config, "DISABLE_JIT", True)
    assert not int8_vnni._host_has_vnni()
