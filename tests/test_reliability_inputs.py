"""Issue 18: numbers that used to turn into NaN, or disagree between backends, without a word.

Non-finite logits inside the lengths (losses), NaN ``dloss``, NaN in masked-out attention rows, huge
attention scores, and a dtype mismatch in ``lstm_backward``. Padding may hold anything: NaN written
there must never raise nor leak into a result.
"""

from __future__ import annotations

import numpy as np
import pytest

from scratchasr.losses import ctc_loss, ctc_loss_backward, rnnt_loss, rnnt_loss_backward

BACKENDS = ["numpy", "numba"]


def _ctc_batch(rng, dtype=np.float64):
    x = rng.standard_normal((2, 6, 5)).astype(dtype)
    y = np.array([[1, 2, 3], [4, 1, 0]])
    return x, y, np.array([6, 4]), np.array([3, 2])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("zero_infinity", [False, True])
def test_ctc_non_finite_logits_inside_the_lengths_are_an_error(backend, bad, zero_infinity):
    x, y, xl, yl = _ctc_batch(np.random.default_rng(0))
    x[1, 3, 2] = bad                                   # frame 3 < logit_lengths[1] = 4: read by the loss
    with pytest.raises(ValueError, match=r"^logits: .* at index \(1, 3, 2\), inside logit_lengths"):
        ctc_loss(x, y, xl, yl, backend=backend, zero_infinity=zero_infinity)
    x[1, 3, 2] = 0.0
    x[1, 2, :] = -np.inf                               # -inf masks symbols, but not all of them
    with pytest.raises(ValueError, match=r"^logits: every symbol is -inf at frame \(1, 2\)"):
        ctc_loss(x, y, xl, yl, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_ctc_nan_in_the_padding_is_ignored_and_backends_agree(backend):
    x, y, xl, yl = _ctc_batch(np.random.default_rng(1))
    clean, _ = ctc_loss(x, y, xl, yl, reduction="none", backend=backend)
    x[1, 4:] = np.nan                                  # padding of utterance 1
    x[0, 0, 0] = -np.inf                               # a masked symbol inside the lengths is fine
    loss, cache = ctc_loss(x, y, xl, yl, reduction="none", backend=backend)
    other, _ = ctc_loss(x, y, xl, yl, reduction="none", backend=[b for b in BACKENDS if b != backend][0])
    assert np.all(np.isfinite(loss)) and loss[1] == clean[1]
    np.testing.assert_allclose(loss, other, rtol=1e-10)
    d = ctc_loss_backward(np.ones(2), cache)
    assert np.all(np.isfinite(d)) and np.all(d[1, 4:] == 0.0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_dloss_is_an_error(backend, bad):
    x, y, xl, yl = _ctc_batch(np.random.default_rng(2))
    _, cache = ctc_loss(x, y, xl, yl, backend=backend)
    with pytest.raises(ValueError, match=r"^dloss: expected finite values"):
        ctc_loss_backward(bad, cache)
    _, cache = ctc_loss(x, y, xl, yl, reduction="none", backend=backend)
    with pytest.raises(ValueError, match=r"^dloss: expected finite values"):
        ctc_loss_backward(np.array([1.0, bad]), cache)
    z = np.random.default_rng(3).standard_normal((2, 4, 3, 5))
    _, rcache = rnnt_loss(z, np.array([[1, 2], [3, 0]]), [4, 3], [2, 1], backend=backend)
    with pytest.raises(ValueError, match=r"^dloss: expected finite values"):
        rnnt_loss_backward(bad, rcache)


@pytest.mark.parametrize("backend", BACKENDS)
def test_rnnt_non_finite_logits_inside_the_lattice_are_an_error(backend):
    rng = np.random.default_rng(4)
    z = rng.standard_normal((2, 4, 3, 5))
    y, zl, yl = np.array([[1, 2], [3, 0]]), np.array([4, 3]), np.array([2, 1])
    clean, _ = rnnt_loss(z, y, zl, yl, reduction="none", backend=backend)
    z[1, 3] = np.nan                                   # t = 3 >= T_1 = 3: padding
    z[1, :, 2] = np.nan                                # u = 2 > U_1 = 1: padding
    loss, cache = rnnt_loss(z, y, zl, yl, reduction="none", backend=backend)
    np.testing.assert_array_equal(loss, clean)
    assert np.all(np.isfinite(rnnt_loss_backward(np.ones(2), cache)))
    for bad in (np.nan, np.inf):
        z2 = z.copy()
        z2[1, 2, 1, 4] = bad                           # inside T_1 x (U_1 + 1)
        with pytest.raises(ValueError, match=r"^logits: .* at index \(1, 2, 1, 4\), inside logit_lengths "
                                             r"and target_lengths"):
            rnnt_loss(z2, y, zl, yl, backend=backend)


# ---------------------------------------------------------------- attention


def _sdpa_inputs(seed=0, dtype=np.float64):
    from scratchasr.ops.attention import padding_mask
    rng = np.random.default_rng(seed)
    q, k = (rng.standard_normal((2, 2, 4, 3)).astype(dtype) for _ in range(2))
    v = rng.standard_normal((2, 2, 4, 5)).astype(dtype)
    return q, k, v, padding_mask(np.array([4, 2]), 4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("where", ["v", "k", "kv"])
def test_sdpa_never_reads_masked_out_rows(dtype, where):
    from scratchasr.ops.attention import sdpa_backward, sdpa_forward
    q, k, v, mask = _sdpa_inputs(dtype=dtype)
    ref, ref_cache = sdpa_forward(q, k, v, mask)
    k2, v2 = k.copy(), v.copy()
    if "k" in where:
        k2[1, :, 2:] = np.nan                          # keys 2, 3 of utterance 1 are padding
    if "v" in where:
        v2[1, :, 2:] = np.nan
    out, cache = sdpa_forward(q, k2, v2, mask)
    tol = 1e-12 if dtype == np.float64 else 1e-5     # rows re-read over their keys: a different sum order
    np.testing.assert_allclose(out, ref, rtol=tol, atol=tol)
    dout = np.random.default_rng(1).standard_normal(out.shape).astype(dtype)
    for got, want in zip(sdpa_backward(dout, cache), sdpa_backward(dout, ref_cache)):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def test_sdpa_nan_in_an_attended_value_still_shows():
    from scratchasr.ops.attention import sdpa_forward
    q, k, v, mask = _sdpa_inputs()
    v[1, 0, 1, 0] = np.nan                             # key 1 < length 2: attended by every query
    out, _ = sdpa_forward(q, k, v, mask)
    assert np.isnan(out[1, 0, :, 0]).all() and np.isfinite(np.delete(out, 1, axis=0)).all()
    assert np.isfinite(out[1, 0, :, 1:]).all() and np.isfinite(out[1, 1]).all()


@pytest.mark.parametrize("magnitude", [1e100, 1e154, 1e200, 1e300])
@pytest.mark.parametrize("masked", [False, True])
def test_sdpa_huge_scores_give_hard_attention_not_nan(magnitude, masked):
    # q k^T / sqrt(d) around magnitude**2: far beyond float64 for >= 1e155. The softmax tends to a
    # one-hot on each row's largest score, which is what must come out (never NaN, never a warning).
    import warnings

    from scratchasr.ops.attention import causal_mask, sdpa_backward, sdpa_forward
    q, k, v, _ = _sdpa_inputs(2)
    mask = causal_mask(4) if masked else None
    s = np.einsum("bhid,bhjd->bhij", q, k)
    s = np.where(causal_mask(4), s, -np.inf) if masked else s
    hard = np.take_along_axis(v, s.argmax(-1)[..., None], axis=2)      # (B, H, Tq, dv)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, cache = sdpa_forward(q * magnitude, k * magnitude, v, mask)
        grads = sdpa_backward(np.ones_like(out), cache)
    np.testing.assert_allclose(out, hard, atol=1e-12)
    assert all(np.isfinite(g).all() for g in grads)


def test_sdpa_overflow_rescaling_matches_the_plain_path():
    # the power-of-two rescaling is exact: at a moderate scale where both paths apply, same weights
    from scratchasr.ops.attention import masked_softmax
    rng = np.random.default_rng(3)
    s = rng.standard_normal((2, 3, 6)) * 4
    mask = rng.random((2, 3, 6)) > 0.3
    for m in (None, mask):
        np.testing.assert_allclose(masked_softmax(s / 2.0 ** 10, m, log2_gain=10), masked_softmax(s, m),
                                   rtol=1e-13, atol=1e-300)


# ---------------------------------------------------------------- LSTM


def test_lstm_backward_refuses_a_dtype_other_than_the_forwards():
    from scratchasr.ops.lstm import lstm_backward, lstm_forward, lstm_step_backward, lstm_step_forward
    rng = np.random.default_rng(0)
    B, T, D, H = 2, 3, 4, 5
    f32 = np.float32
    x = rng.standard_normal((B, T, D)).astype(f32)
    h0 = np.zeros((B, H), f32)
    W_ih = rng.standard_normal((4 * H, D)).astype(f32)
    W_hh = rng.standard_normal((4 * H, H)).astype(f32)
    b = np.zeros(4 * H, f32)
    hs, _, cache = lstm_forward(x, [3, 2], h0, h0, W_ih, W_hh, b)
    dh = np.ones(hs.shape, f32)
    ref = lstm_backward(dh, cache, np.ones((B, H), f32), np.ones((B, H), f32))
    assert all(g.dtype == f32 for g in ref)
    for name, args in (("dh_n", (dh, cache, np.ones((B, H)), None)),
                       ("dc_n", (dh, cache, None, np.ones((B, H)))),
                       ("dh", (dh.astype(np.float64), cache))):
        with pytest.raises(TypeError, match=rf"^{name}: expected dtype float32 .*got float64"):
            lstm_backward(*args)
    _, _, step_cache = lstm_step_forward(x[:, 0], h0, h0, W_ih, W_hh, b)
    with pytest.raises(TypeError, match=r"^dc: expected dtype float32"):
        lstm_step_backward(np.ones((B, H), f32), np.ones((B, H)), step_cache)
    with pytest.raises(TypeError, match=r"^dh: expected dtype float32"):
        lstm_step_backward(np.ones((B, H)), None, step_cache)


# ---------------------------------------------------------------- feature options Kaldi refuses


@pytest.mark.parametrize("fn_name", ["fbank", "mfcc"])
def test_feature_options_kaldi_refuses_are_refused_with_the_option_named(fn_name):
    from scratchasr import features
    fn = getattr(features, fn_name)
    x = np.random.default_rng(0).standard_normal(1600)
    extra = {"num_ceps": 13} if fn_name == "mfcc" else {}
    with pytest.raises(ValueError, match=r"^num_mel_bins: 128 filters .* leave 1 filter\(s\) without any"):
        fn(x, num_mel_bins=128, **extra)                  # 16 kHz, 512-point DFT: Kaldi's limit is 126
    assert fn(x, num_mel_bins=126, **extra).shape[0] == 8
    with pytest.raises(ValueError, match=r"^high_freq:"):
        fn(x, low_freq=4000.0, high_freq=3000.0, **extra)
    with pytest.raises(ValueError, match=r"^high_freq:"):
        fn(x, low_freq=4000.0, high_freq=4000.0, **extra)
    with pytest.raises(ValueError, match=r"^low_freq:"):
        fn(x, low_freq=float("nan"), **extra)
    for name, bad in (("frame_length", float("nan")), ("frame_shift", 0.0), ("frame_length", -25.0),
                      ("dither", float("nan"))):
        with pytest.raises(ValueError, match=rf"^{name}:"):
            fn(x, **{name: bad}, **extra)
    # a frame longer than the signal: no frame, as Kaldi (snip_edges=True); compute_features raises
    assert fn(x[:399], **extra).shape[0] == 0


@pytest.mark.oracle
def test_empty_mel_filter_refusal_matches_kaldi():
    knf = pytest.importorskip("kaldi_native_fbank")
    from scratchasr.features import fbank

    def kaldi_accepts(n, sr, low, high):
        o = knf.FbankOptions()
        o.frame_opts.dither, o.frame_opts.samp_freq = 0.0, sr
        o.mel_opts.num_bins, o.mel_opts.low_freq, o.mel_opts.high_freq = n, low, high
        try:
            knf.OnlineFbank(o)
            return True
        except ValueError:                                   # "You may have set num_mel_bins too large."
            return False

    def we_accept(n, sr, low, high):
        try:
            fbank(np.zeros(int(sr) // 10), num_mel_bins=n, sample_frequency=sr, low_freq=low, high_freq=high)
            return True
        except ValueError as e:
            assert str(e).startswith("num_mel_bins:")
            return False

    for sr, low, high in ((16000.0, 20.0, 0.0), (8000.0, 0.0, -400.0), (16000.0, 64.0, 3000.0)):
        verdicts = [(kaldi_accepts(n, sr, low, high), we_accept(n, sr, low, high)) for n in range(40, 140, 3)]
        assert [k for k, _ in verdicts] == [w for _, w in verdicts]
        assert any(k for k, _ in verdicts) and not all(k for k, _ in verdicts)   # the boundary is crossed
