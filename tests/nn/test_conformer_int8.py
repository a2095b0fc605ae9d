"""int8 post-training quantisation: per-channel scales, exact int32 products (Numba == NumPy twin),
the per-output error bound [conformer:int8-bound], and model-level parity with the float path."""

import io

import numpy as np
import pytest

from scratchasr import models
from scratchasr.data.batch import make_batch
from scratchasr.nn.conformer_int8 import (Int8Linear, int8_error_bound, int8_matmul, quantize_int8,
                                          quantize_rows, quantize_weight)


def test_weight_scales_are_per_output_channel():
    rng = np.random.default_rng(0)
    W = rng.standard_normal((5, 7)) * np.array([1e-3, 1, 10, 0, 2])[:, None]  # rows of very different size
    Wq, s = quantize_weight(W)
    assert Wq.dtype == np.int8 and s.dtype == np.float32
    np.testing.assert_allclose(s[[0, 1, 2, 4]], np.abs(W[[0, 1, 2, 4]]).max(axis=1) / 127, rtol=1e-6)
    assert s[3] == 1 and np.all(Wq[3] == 0)
    assert np.all(np.abs(Wq).max(axis=1)[[0, 1, 2, 4]] == 127)  # each row uses the full range
    err = np.abs(W - s[:, None].astype(np.float64) * Wq)
    assert np.all(err <= s[:, None] / 2 * (1 + 1e-6))  # rounding only, never clipping
    xq, a = quantize_rows(W)
    assert xq.dtype == np.int8
    assert np.all(np.abs(W - a[:, None].astype(np.float64) * xq) <= a[:, None] / 2 * 1.0001)


@pytest.mark.parametrize("shape", [(1, 1, 1), (7, 33, 5), (64, 300, 17)])
def test_integer_product_kernel_equals_its_numpy_twin_and_int64(shape):
    N, K, n_out = shape
    rng = np.random.default_rng(1)
    xq = rng.integers(-127, 128, (N, K)).astype(np.int8)
    wq = rng.integers(-127, 128, (n_out, K)).astype(np.int8)
    ref = xq.astype(np.int64) @ wq.astype(np.int64).T
    a, b = int8_matmul(xq, wq, backend="numba"), int8_matmul(xq, wq, backend="numpy")
    assert a.dtype == np.int32
    np.testing.assert_array_equal(a, ref)
    np.testing.assert_array_equal(b, ref)


def test_integer_product_refuses_bad_operands_by_name():
    with pytest.raises(TypeError, match=r"^xq:"):
        int8_matmul(np.zeros((2, 3), np.int16), np.zeros((2, 3), np.int8))
    with pytest.raises(ValueError, match=r"^xq:"):
        int8_matmul(np.zeros((2, 3), np.int8), np.zeros((2, 4), np.int8))
    with pytest.raises(ValueError, match=r"^backend:"):
        int8_matmul(np.zeros((2, 3), np.int8), np.zeros((2, 3), np.int8), backend="cuda")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_int8_linear_error_is_within_the_bound(dtype):
    rng = np.random.default_rng(2)
    W = (rng.standard_normal((24, 40)) * rng.uniform(0.1, 3, (24, 1))).astype(dtype)
    b = rng.standard_normal(24).astype(dtype)
    x = (rng.standard_normal((30, 40)) * rng.uniform(0.01, 5, (30, 1))).astype(dtype)
    y = x.astype(np.float64) @ W.astype(np.float64).T + b
    yq = Int8Linear(W, b)(x)
    assert yq.dtype == dtype
    err = np.abs(yq - y)
    bound = int8_error_bound(x.astype(np.float64), W.astype(np.float64))
    float_eps = 4 * np.finfo(dtype).eps * (np.abs(y) + 1)
    assert np.all(err <= bound + float_eps)
    assert err.max() > 1e-3 * bound.max()  # the path really quantises (not a float fallback)
    # lengths: padded frames give 0
    y3 = Int8Linear(W, b)(x.reshape(3, 10, 40), np.array([10, 4, 0]))
    assert np.all(y3[1, 4:] == 0) and np.all(y3[2] == 0)
    np.testing.assert_array_equal(y3[0], yq[:10])


def _trained_like(name, **kw):
    """A model with weights of realistic spread (random, larger than init) and batch-norm statistics."""
    m = models.build(name, input_dim=20, vocab_size=12, dtype=np.float32, seed=0, hidden=32, num_layers=2,
                     heads=4, ff_mult=4, conv_kernel=7, dropout=0.0, sub_channels=8, **kw)
    rng = np.random.default_rng(3)
    for _, mod in m.named_modules():
        if "running_var" in mod.buffers:
            mod.buffers["running_var"][...] = rng.uniform(0.5, 2, mod.buffers["running_var"].shape)
    m.eval()
    return m


def test_conformer_ctc_int8_matches_the_float_path():
    m = _trained_like("conformer_ctc")
    rng = np.random.default_rng(4)
    batch = make_batch([rng.standard_normal((80, 20)).astype(np.float32),
                        rng.standard_normal((50, 20)).astype(np.float32)], [[1], [2]])
    q = quantize_int8(m)
    h, hl = m.encoder(batch.feats, batch.feat_lengths)
    hq, hql = q.encoder(batch.feats, batch.feat_lengths)
    np.testing.assert_array_equal(hl, hql)
    rel = np.linalg.norm(hq - h) / np.linalg.norm(h)
    assert 1e-4 < rel < 0.03, rel  # quantised, and within 3 % of the float encoder output
    lp, _ = m.log_probs(batch)
    lq, _ = q.log_probs(batch)
    valid = np.arange(lp.shape[1])[None, :] < hl[:, None]
    assert np.abs(lp - lq)[valid].max() < 0.15
    assert np.mean(lp.argmax(-1)[valid] == lq.argmax(-1)[valid]) > 0.9
    assert np.all(lq[~valid] == lq[~valid][0])  # padding rows: the output layer of zeros, both paths
    # the float model is untouched and the copy cannot train
    assert not hasattr(m, "quantized") and q.quantized == "int8"
    with pytest.raises(RuntimeError, match=r"^Int8Linear:"):
        q.output.backward(np.zeros((1, 12), np.float32))


def test_int8_copy_is_about_a_quarter_of_the_bytes():
    m = _trained_like("conformer_ctc")
    nbytes = [sum(v.nbytes for v in model.state_dict().values()) for model in (m, quantize_int8(m))]
    assert nbytes[1] < 0.35 * nbytes[0], nbytes  # int8 weights + float32 scales, norms and convolutions
    buf = io.BytesIO()
    np.savez(buf, **quantize_int8(m).state_dict())  # and it saves and loads like any state
    buf.seek(0)
    assert set(np.load(buf).files) == set(quantize_int8(m).state_dict())


def test_conformer_transducer_int8_decodes():
    m = _trained_like("conformer_transducer", pred_hidden=8, joint_dim=16)
    rng = np.random.default_rng(5)
    batch = make_batch([rng.standard_normal((60, 20)).astype(np.float32)], [[1]])
    q = quantize_int8(m)
    assert isinstance(q.joint_enc, Int8Linear) and isinstance(q.encoder.layers[1].ff2.lin1, Int8Linear)
    assert not isinstance(q.joint_out, Int8Linear)  # read as a float array by the step interface
    f, _ = m.encode(batch.feats, batch.feat_lengths)
    fq, _ = q.encode(batch.feats, batch.feat_lengths)
    assert np.linalg.norm(fq - f) / np.linalg.norm(f) < 0.03
    for hyp in q.decode(batch) + q.decode(batch, method="beam", beam_size=3):
        assert all(1 <= t < 12 for t in hyp)
