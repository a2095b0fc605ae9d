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


def _streaming_int8(name, **kw):
    m = models.build(name, input_dim=20, vocab_size=12, dtype=np.float64, seed=0, hidden=16, num_layers=2,
                     heads=2, ff_mult=2, conv_kernel=5, dropout=0.0, sub_channels=4, chunk_size=2,
                     left_chunks=2, causal=True, **kw)
    for p in m.parameters().values():
        p[...] *= 2.0                      # a random model with confident outputs
    m.eval()
    return m, quantize_int8(m)


@pytest.mark.parametrize("name, kw", [("conformer_ctc", {}),
                                      ("conformer_transducer", dict(pred_hidden=8, joint_dim=16))])
def test_int8_streaming_equals_the_int8_chunk_masked_model(name, kw):
    """The streaming path runs the int8 projections too (not the float weights): streamed outputs equal
    the int8 copy's offline chunk-masked outputs (rows are quantised one by one, so chunking changes
    nothing but float rounding) and differ from the float model's."""
    m, q = _streaming_int8(name, **kw)
    x = np.random.default_rng(6).standard_normal((1, 61, 20))
    lengths = np.array([61])
    if name == "conformer_ctc":
        offline_q, _ = q.log_probs(make_batch([x[0]], [[1]]))
        offline_f, _ = m.log_probs(make_batch([x[0]], [[1]]))
    else:
        offline_q, _ = q.encode(x, lengths)
        offline_f, _ = m.encode(x, lengths)
    state, outs = q.stream_init(1), []
    for s in range(0, 61, 7):
        out, state = q.stream(x[:, s:s + 7], state)
        outs.append(out)
    out, state = q.stream(x[:, :0], state, final=True)
    streamed = np.concatenate(outs + [out], axis=1)
    assert streamed.shape == offline_q.shape
    np.testing.assert_allclose(streamed, offline_q, atol=1e-8)
    assert np.abs(streamed - offline_f).max() > 1e-4      # the int8 weights were used
    if name == "conformer_transducer":
        from scratchasr.models.conformer import ConformerStreamer
        st = ConformerStreamer(q)
        for s in range(0, 61, 9):
            st.accept(x[0, s:s + 9])
        assert st.finish() == q.decode(make_batch([x[0]], [[]]))[0]


def test_load_int8_and_the_cli_flag(tmp_path, capsys):
    """``inference.load(int8=True)`` and ``--int8`` of decode/transcribe give the quantised copy of a
    Conformer checkpoint; other models are refused by name."""
    import soundfile as sf

    from scratchasr.cli import main
    from scratchasr.frontend import Frontend
    from scratchasr.inference import load, transcribe
    from scratchasr.io import save_checkpoint

    rng = np.random.default_rng(7)
    fe = Frontend(dict(num_mel_bins=10, delta_order=0))
    t = np.arange(8000) / 16000
    y = (0.3 * np.sin(2 * np.pi * 300 * t * (1 + t)) + 0.05 * rng.standard_normal(8000)).astype(np.float32)
    fe.fit([fe.raw_features(y, 16000)])
    wav = str(tmp_path / "a.wav")
    sf.write(wav, y, 16000, subtype="FLOAT")
    vocab = ["<blank>"] + [f"t{i}" for i in range(5)]

    def write(name, **opts):
        m = models.build(name, input_dim=fe.dim, vocab_size=len(vocab), seed=1, **opts)
        for p in m.parameters().values():
            p[...] *= 3.0
        arrays = dict(m.state_dict())
        arrays.update(fe.arrays())
        path = str(tmp_path / f"{name}.npz")
        save_checkpoint(path, arrays, meta=dict(model=m.config, vocab=vocab, units="phones", scoring="tokens",
                                                frontend=fe.meta()))
        return path

    ck = write("conformer_ctc", hidden=8, num_layers=1, heads=2, ff_mult=2, conv_kernel=3, sub_channels=3,
               chunk_size=2, left_chunks=1, causal=True, dropout=0.0)
    q, _ = load(ck, int8=True)
    f, _ = load(ck)
    assert q.quantized == "int8" and not hasattr(f, "quantized")
    assert q.vocabulary.tokens == vocab and q.units == "phones"
    assert isinstance(q.output, Int8Linear)
    assert transcribe(ck, [wav], int8=True) == [q.vocabulary.decode(q.decode(
        make_batch([fe.from_file(wav)], [[]]))[0])]
    for cmd in (["transcribe", ck, wav, "--int8"], ["transcribe", ck, wav, "--int8", "--stream"]):
        assert main(cmd) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == lines[-1]                              # offline int8 == streamed int8 (final line)
    with pytest.raises(TypeError, match=r"^int8:"):
        load(ck, int8="yes")
    other = write("ctc_blstm", hidden=4, num_layers=1)
    with pytest.raises(ValueError, match=r"^int8:"):
        load(other, int8=True)
    assert main(["transcribe", other, wav, "--int8"]) == 2
