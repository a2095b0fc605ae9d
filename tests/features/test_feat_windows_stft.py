"""Windows, framing, stft/istft: against scipy's windows, the DFT-as-matrix reference, and round trips."""

import numpy as np
import pytest
import scipy.signal

from scratchasr.features import (dft_matrix, frame_signal, frames_kaldi, get_window, istft,
                                 num_frames_kaldi, stft, stft_reference)


@pytest.mark.parametrize("name,scipy_name", [("hann", "hann"), ("hamming", "hamming"),
                                             ("blackman", "blackman"), ("rectangular", "boxcar")])
@pytest.mark.parametrize("N", [1, 2, 7, 400, 512])
@pytest.mark.parametrize("periodic", [True, False])
def test_windows_match_scipy(name, scipy_name, N, periodic):
    ref = scipy.signal.get_window(scipy_name, N, fftbins=periodic)
    np.testing.assert_allclose(get_window(name, N, periodic=periodic), ref, rtol=0, atol=1e-15)


def test_povey_and_symmetry():
    w = get_window("povey", 400, periodic=False)
    np.testing.assert_allclose(w, get_window("hann", 400, periodic=False) ** 0.85, rtol=1e-15)
    np.testing.assert_allclose(w, w[::-1], atol=1e-15)  # symmetric: w[n] = w[N-1-n]
    assert w[0] == 0.0
    hp = get_window("hann", 8, periodic=True)          # periodic = first N of a symmetric N+1 window
    np.testing.assert_allclose(hp, get_window("hann", 9, periodic=False)[:8], atol=1e-16)
    with pytest.raises(ValueError, match=r"^window:"):
        get_window("kaiser", 8)
    with pytest.raises(ValueError, match=r"^N:"):
        get_window("hann", 0)
    assert not get_window("hann", 8).flags.writeable  # cached, so nobody may write into it


def test_frame_signal_is_a_view_with_librosa_count():
    y = np.arange(20.0)
    f = frame_signal(y, 6, 4)
    assert f.shape == (1 + (20 - 6) // 4, 6)
    np.testing.assert_array_equal(f[2], y[8:14])
    assert np.shares_memory(f, y) and not f.flags.writeable
    with pytest.raises(ValueError, match="shorter than one frame"):
        frame_signal(y[:5], 6, 4)


@pytest.mark.parametrize("N", [1, 5, 80, 100, 239, 399, 400, 401, 559, 560, 1000, 16000])
def test_kaldi_framing_counts_and_mirroring(N):
    y = np.arange(1, N + 1, dtype=np.float64)
    L, S = 400, 160
    f = frames_kaldi(y, L, S, snip_edges=True)
    assert f.shape == (0 if N < L else 1 + (N - L) // S, L)
    if f.shape[0]:
        np.testing.assert_array_equal(f[-1], y[(f.shape[0] - 1) * S: (f.shape[0] - 1) * S + L])
    g = frames_kaldi(y, L, S, snip_edges=False)
    n = (N + S // 2) // S
    assert g.shape == (n, L) and n == num_frames_kaldi(N, L, S, False)
    # Kaldi's rule, written out: sample s of frame i is i*S + S//2 - L//2 + s, reflected
    # (s < 0 -> -s - 1, s >= N -> 2N - 1 - s) until it lies inside the signal.
    for i in range(n):
        for s in (0, 1, L // 2, L - 1):
            k = i * S + S // 2 - L // 2 + s
            while k < 0 or k >= N:
                k = -k - 1 if k < 0 else 2 * N - 1 - k
            assert g[i, s] == y[k]


@pytest.mark.parametrize("kw", [dict(n_fft=64), dict(n_fft=64, hop_length=10, win_length=50),
                                dict(n_fft=32, center=False, window="hamming"),
                                dict(n_fft=48, pad_mode="reflect", window="blackman"),
                                dict(n_fft=33, hop_length=7, window="rectangular", pad_mode="edge")])
def test_stft_matches_dft_matrix_reference(kw, rng):
    y = rng.standard_normal(301)
    X = stft(y, **kw)
    R = stft_reference(y, **kw)
    assert X.shape == R.shape and X.dtype == np.complex128
    np.testing.assert_allclose(X, R, rtol=0, atol=1e-12 * np.abs(R).max())
    assert stft(y.astype(np.float32), **kw).dtype == np.complex64


def test_dft_matrix_is_the_definition():
    F = dft_matrix(8)
    assert F.shape == (5, 8)
    e = np.eye(8)[3]                                   # a unit impulse at n = 3
    np.testing.assert_allclose(F @ e, np.exp(-2j * np.pi * np.arange(5) * 3 / 8), atol=1e-15)
    np.testing.assert_allclose(F @ np.ones(8), [8, 0, 0, 0, 0], atol=1e-12)


@pytest.mark.parametrize("kw", [dict(n_fft=512, hop_length=128),
                                dict(n_fft=512, hop_length=160, win_length=400),
                                dict(n_fft=256, hop_length=64, window="hamming"),
                                dict(n_fft=256, hop_length=128, window="rectangular", center=False)])
def test_istft_inverts_stft(kw, rng):
    y = rng.standard_normal(4001)
    X = stft(y, **kw)
    z = istft(X, length=y.size, **kw)
    # Exact wherever the squared windows overlap to a non-zero sum: everywhere with center=True,
    # and away from the uncovered tail with center=False.
    end = y.size if kw.get("center", True) else kw["n_fft"] + kw["hop_length"] * (X.shape[1] - 1)
    np.testing.assert_allclose(z[:end], y[:end], atol=1e-12)
    z32 = istft(stft(y.astype(np.float32), **kw), length=y.size, **kw)
    assert z32.dtype == np.float32
    np.testing.assert_allclose(z32[:end], y[:end], atol=1e-5)


def test_stft_bad_input():
    with pytest.raises(ValueError, match=r"^y: the signal is empty"):
        stft(np.zeros(0))
    with pytest.raises(ValueError, match=r"^y: expected finite samples, found nan at index 1"):
        stft(np.array([0.0, np.nan] * 600))
    with pytest.raises(ValueError, match=r"^y: expected finite samples, found inf at index 1"):
        stft(np.array([0.0, np.inf] * 600))
    with pytest.raises(ValueError, match=r"^y: expected a 1-D signal.*mono=True"):
        stft(np.zeros((2, 4000)))
    with pytest.raises(TypeError, match=r"^y:"):
        stft(np.zeros(4000, dtype=np.int16))
    with pytest.raises(ValueError, match=r"^y: signal of 100 samples is shorter than one frame"):
        stft(np.zeros(100), n_fft=256, center=False)
    with pytest.raises(ValueError, match=r"^pad_mode:"):
        stft(np.zeros(1000), n_fft=256, pad_mode="wrap")
    with pytest.raises(ValueError, match=r"^win_length:"):
        stft(np.zeros(1000), n_fft=256, win_length=300)
    with pytest.raises(ValueError, match=r"^stft_matrix: expected 129 rows"):
        istft(np.zeros((100, 3), dtype=np.complex128), n_fft=256)
