"""Mel scales and filterbanks, Kaldi fbank/mfcc against a per-frame loop written from Kaldi's source."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchasr.features import (dct_matrix, fbank, hz_to_mel, kaldi_mel_banks, lifter_coefficients,
                                 mel_filterbank, mel_to_hz, melspectrogram, mfcc, power_to_db)

FLT_EPS = np.finfo(np.float32).eps


@pytest.mark.parametrize("htk", [True, False])
def test_mel_scale_round_trip_and_anchors(htk):
    f = np.array([0.0, 20.0, 500.0, 999.9, 1000.0, 1000.1, 4000.0, 8000.0, 11025.0])
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(f, htk=htk), htk=htk), f, rtol=1e-12, atol=1e-9)
    m = hz_to_mel(f, htk=htk)
    assert np.all(np.diff(m) > 0)
    if htk:
        # librosa 2595 log10(.) and Kaldi 1127 ln(.) differ by the rounding of 2595 / ln 10 = 1127.01
        np.testing.assert_allclose(hz_to_mel(1000.0, htk=True), 1127 * np.log(1 + 1000 / 700), rtol=1e-5)
        np.testing.assert_allclose(hz_to_mel(1000.0, htk=True), 2595 * np.log10(1 + 1000 / 700), rtol=1e-14)
    else:
        np.testing.assert_allclose(hz_to_mel(1000.0), 15.0, rtol=1e-12)     # the linear/log join
        np.testing.assert_allclose(hz_to_mel(600.0), 9.0, rtol=1e-12)       # linear part: f / (200/3)


def test_librosa_filterbank_properties():
    W = mel_filterbank(sr=16000, n_fft=512, n_mels=40, htk=True, norm=None, dtype=np.float64)
    assert W.shape == (40, 257) and W.min() >= 0 and W.max() <= 1 + 1e-12
    Ws = mel_filterbank(sr=16000, n_fft=512, n_mels=40, htk=True, dtype=np.float64)
    # Slaney norm: every triangle has area ~1 in Hz (a Riemann sum with bin width sr/n_fft).
    area = Ws.sum(axis=1) * 16000 / 512
    np.testing.assert_allclose(area[5:], 1.0, rtol=0.08)
    assert mel_filterbank(sr=16000, n_fft=512).dtype == np.float32


def test_kaldi_banks_peak_one_and_offsets():
    W = kaldi_mel_banks(num_bins=23, padded_window_size=512, sample_frequency=16000.0)
    assert W.shape == (23, 257) and np.all(W[:, -1] == 0) and W.max() <= 1.0
    f = np.arange(257) * 16000 / 512
    assert np.all(W[:, f < 20] == 0)                    # low_freq = 20 Hz
    W2 = kaldi_mel_banks(num_bins=23, padded_window_size=512, sample_frequency=16000.0, high_freq=-1000)
    assert np.all(W2[:, f >= 7000] == 0) and W2[:, f < 7000].any()
    W3 = kaldi_mel_banks(num_bins=23, padded_window_size=512, sample_frequency=16000.0, high_freq=7000)
    np.testing.assert_array_equal(W2, W3)               # -1000 means Nyquist - 1000


def test_sample_rate_mismatch_errors():
    with pytest.raises(ValueError, match=r"^fmax: .* above the Nyquist"):
        mel_filterbank(sr=8000, n_fft=512, fmax=8000)
    with pytest.raises(ValueError, match=r"^high_freq:"):
        fbank(np.ones(8000), sample_frequency=8000.0, high_freq=7600.0)
    with pytest.raises(ValueError, match=r"^low_freq:"):
        fbank(np.ones(8000), sample_frequency=8000.0, low_freq=4000.0)
    with pytest.raises(ValueError, match=r"^fmin/fmax:"):
        melspectrogram(y=np.ones(4000), sr=16000, fmin=5000, fmax=4000)


def kaldi_fbank_loop(x, *, L=400, S=160, P=512, preemph=0.97, window="povey", num_bins=23,
                     low=20.0, high=0.0, sr=16000.0, use_energy=False, mfcc_ceps=0, lifter=22.0):
    """Kaldi's per-frame algorithm transcribed loop by loop (feature-window.cc / mel-computations.cc)."""
    x = np.asarray(x, dtype=np.float64)
    T = 1 + (len(x) - L) // S
    a = 2 * np.pi / (L - 1)
    win = np.array([(0.5 - 0.5 * np.cos(a * i)) ** 0.85 if window == "povey" else 0.54 - 0.46 * np.cos(a * i)
                    for i in range(L)])
    nyq = sr / 2
    high = high if high > 0 else nyq + high
    mel = lambda f: 1127.0 * np.log(1.0 + f / 700.0)  # noqa: E731
    ml, mh = mel(low), mel(high)
    delta = (mh - ml) / (num_bins + 1)
    out = []
    for t in range(T):
        w = x[t * S: t * S + L].copy()
        w -= w.sum() / L
        energy = np.log(max(np.dot(w, w), FLT_EPS))
        for i in range(L - 1, 0, -1):
            w[i] -= preemph * w[i - 1]
        w[0] -= preemph * w[0]
        w *= win
        buf = np.zeros(P)
        buf[:L] = w
        spec = np.abs(np.fft.fft(buf)[: P // 2 + 1]) ** 2
        e = np.zeros(num_bins)
        for b in range(num_bins):
            left, center, right = ml + b * delta, ml + (b + 1) * delta, ml + (b + 2) * delta
            for k in range(P // 2):
                m = mel(sr / P * k)
                if left < m < right:
                    wt = (m - left) / (center - left) if m <= center else (right - m) / (right - center)
                    e[b] += wt * spec[k]
        e = np.log(np.maximum(e, FLT_EPS))
        if mfcc_ceps:
            c = np.array([np.sum(e * (np.sqrt((1 if j == 0 else 2) / num_bins)
                                      * np.cos(np.pi / num_bins * (np.arange(num_bins) + 0.5) * j)))
                          for j in range(mfcc_ceps)])
            c *= 1 + 0.5 * lifter * np.sin(np.pi * np.arange(mfcc_ceps) / lifter)
            if use_energy:
                c[0] = energy
            out.append(c)
        else:
            out.append(np.concatenate([[energy], e]) if use_energy else e)
    return np.array(out)


def _speechlike(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000
    return 3000 * np.sin(2 * np.pi * 300 * t) * (1 + np.sin(2 * np.pi * 3 * t)) + 200 * rng.standard_normal(n)


@pytest.mark.parametrize("kw", [dict(), dict(window="hamming", num_bins=40, use_energy=True),
                                dict(num_bins=30, low=100.0, high=-500.0)])
def test_fbank_matches_kaldi_loop(kw):
    x = _speechlike()
    ref = kaldi_fbank_loop(x, **kw)
    opts = dict(window_type=kw.get("window", "povey"), num_mel_bins=kw.get("num_bins", 23),
                low_freq=kw.get("low", 20.0), high_freq=kw.get("high", 0.0),
                use_energy=kw.get("use_energy", False))
    ours = fbank(x, **opts)
    assert ours.dtype == np.float32 and ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=1e-4)
    ours64 = fbank(x.astype(np.float64), **opts)
    np.testing.assert_allclose(ours64, ref, atol=1e-5)


@pytest.mark.parametrize("use_energy", [True, False])
def test_mfcc_matches_kaldi_loop(use_energy):
    x = _speechlike(seed=1)
    ref = kaldi_fbank_loop(x, mfcc_ceps=13, use_energy=use_energy)
    np.testing.assert_allclose(mfcc(x, use_energy=use_energy), ref, atol=1e-4)


def test_dct_orthonormal_and_lifter():
    D = dct_matrix(23, 23)
    np.testing.assert_allclose(D @ D.T, np.eye(23), atol=1e-12)
    np.testing.assert_allclose(lifter_coefficients(3, 22.0),
                               [1.0, 1 + 11 * np.sin(np.pi / 22), 1 + 11 * np.sin(2 * np.pi / 22)])


def test_fbank_options_change_what_they_should():
    x = _speechlike()
    base = fbank(x, num_mel_bins=23)
    assert base.shape == (1 + (4000 - 400) // 160, 23)
    mag = fbank(x, use_power=False)
    # Cauchy-Schwarz: (sum_k W_ik |X_k|)^2 <= (sum_k W_ik) (sum_k W_ik |X_k|^2),
    # with equality only for flat spectra.
    wsum = kaldi_mel_banks(num_bins=23, padded_window_size=512, sample_frequency=16000.0).sum(axis=1)
    assert np.all(2 * mag <= base + np.log(wsum) + 1e-4)
    assert not np.allclose(2 * mag, base + np.log(wsum), atol=0.1)
    lin = fbank(x, use_log_fbank=False)
    np.testing.assert_allclose(np.log(np.maximum(lin, FLT_EPS)), base, atol=1e-4)
    e_raw = fbank(x, use_energy=True)[:, 0]
    e_win = fbank(x, use_energy=True, raw_energy=False)[:, 0]
    assert np.all(e_win < e_raw)                                   # the window removes energy
    floored = fbank(x, use_energy=True, energy_floor=float(np.exp(e_raw.max() + 1)))[:, 0]
    np.testing.assert_allclose(floored, e_raw.max() + 1, rtol=1e-6)
    # Scale: a signal in [-1, 1] gives features shifted by ln(32768^2) per bin (away from the floor).
    np.testing.assert_allclose(fbank(x / 32768), base - 2 * np.log(32768), atol=1e-3)
    assert fbank(x, snip_edges=False).shape == ((4000 + 80) // 160, 23)
    assert fbank(x, round_to_power_of_two=False, window_type="rectangular").shape == base.shape


def test_dither_uses_the_given_rng_only():
    x = _speechlike()
    a = fbank(x, dither=1.0, rng=np.random.default_rng(3))
    b = fbank(x, dither=1.0, rng=np.random.default_rng(3))
    c = fbank(x, dither=1.0, rng=np.random.default_rng(4))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_allclose(a, fbank(x), atol=0.05)             # dither 1 on int16 scale is tiny here
    with pytest.raises(ValueError, match=r"^rng:"):
        fbank(x, dither=1.0)


def test_bad_input_gives_value_errors():
    for fn in (fbank, mfcc):
        with pytest.raises(ValueError, match=r"^waveform: the signal is empty"):
            fn(np.zeros(0))
        with pytest.raises(ValueError, match=r"^waveform: expected finite samples, found nan at index 500"):
            fn(np.r_[np.zeros(500), np.nan, np.zeros(500)])
        with pytest.raises(ValueError, match=r"^waveform: expected finite samples, found -inf at index 500"):
            fn(np.r_[np.zeros(500), -np.inf])
        with pytest.raises(ValueError, match=r"^waveform: expected a 1-D signal.*mono=True"):
            fn(np.zeros((2, 1000)))
        short = fn(np.ones(399), snip_edges=True)                  # shorter than one frame
        assert short.shape[0] == 0 and short.dtype == np.float32
        with pytest.raises(ValueError, match=r"^waveform: 10 samples give no frame"):
            fn(np.ones(10), snip_edges=False)
        with pytest.raises(ValueError, match=r"^window_type:"):
            fn(np.ones(1000), window_type="kaiser")
    with pytest.raises(ValueError, match=r"^num_ceps:"):
        mfcc(np.ones(1000), num_ceps=30)
    assert fbank(np.zeros(1000)).min() == pytest.approx(np.log(FLT_EPS))   # silence: the floor, not -inf


def test_power_to_db_matches_definition():
    S = np.array([[1e-12, 1.0, 100.0], [10.0, 1e3, 1e-3]])
    db = power_to_db(S, top_db=None)
    np.testing.assert_allclose(db, 10 * np.log10(np.maximum(S, 1e-10)))
    np.testing.assert_allclose(power_to_db(S, top_db=40.0).min(), 30.0 - 40.0)


@settings(max_examples=15, deadline=None)
@given(n=st.integers(400, 1400), seed=st.integers(0, 2**31 - 1), window=st.sampled_from(["povey", "hamming"]),
       num_bins=st.integers(5, 30), low=st.floats(0.0, 300.0), high=st.floats(-2000.0, 0.0),
       preemph=st.floats(0.0, 1.0), use_energy=st.booleans())
def test_fbank_matches_kaldi_loop_property(n, seed, window, num_bins, low, high, preemph, use_energy):
    x = 1000 * np.random.default_rng(seed).standard_normal(n)
    ref = kaldi_fbank_loop(x, window=window, num_bins=num_bins, low=low, high=high, preemph=preemph,
                           use_energy=use_energy)
    ours = fbank(x, window_type=window, num_mel_bins=num_bins, low_freq=low, high_freq=high,
                 preemphasis_coefficient=preemph, use_energy=use_energy)
    np.testing.assert_allclose(ours, ref, atol=1e-4)
