"""Short-time Fourier transform and its inverse, as librosa 0.11 computes them.

``stft``: pad the signal by ``n_fft // 2`` on each side (``center=True``), cut it into frames of
``n_fft`` samples every ``hop_length``, multiply each by the window (zero-padded to ``n_fft`` and
centred when ``win_length < n_fft``) and take the real DFT of every frame at once with one
``rfft`` (scipy.fft's: numpy.fft's pocketfft without numpy 2.4's slow float32 path).
``dft_matrix`` / ``stft_reference`` compute the same numbers the slow, readable way (one matrix
product with the DFT matrix per frame) so the fast path can be checked against the definition.

``istft``: inverse real DFT of every frame, multiply by the window, overlap-add, and divide by the
overlap-added squared window (the least-squares inverse of Griffin & Lim 1984), which gives back the
signal exactly wherever the squared windows overlap to a non-zero sum.

References: librosa 0.11 ``librosa.stft`` / ``librosa.istft``; D. Griffin and J. Lim, "Signal
estimation from modified short-time Fourier transform", IEEE TASSP 32(2), 1984.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import scipy.fft

from .._validate import choice, float_array, positive_int
from .windows import frame_signal, get_window

PAD_MODES = ("constant", "edge", "reflect", "symmetric")


def _check_signal(name: str, y) -> np.ndarray:
    if isinstance(y, np.ndarray) and y.ndim == 2:
        raise ValueError(f"{name}: expected a 1-D signal, got shape {y.shape}; "
                         "downmix multi-channel audio first (load_audio(..., mono=True))")
    y = float_array(name, y, ndim=1)
    if y.size == 0:
        raise ValueError(f"{name}: the signal is empty")
    if not np.all(np.isfinite(y)):
        bad = int(np.argmax(~np.isfinite(y)))
        raise ValueError(f"{name}: expected finite samples, found {y[bad]} at index {bad}")
    return y


def _analysis_window(window, win_length: int, n_fft: int) -> np.ndarray:
    """librosa's ``get_window(window, win_length, fftbins=True)`` centred in ``n_fft`` zeros."""
    if isinstance(window, np.ndarray):
        w = float_array("window", window, ndim=1, shape=(win_length,), finite=True).astype(np.float64)
    else:
        w = get_window(window, win_length, periodic=True)
    if win_length > n_fft:
        raise ValueError(f"win_length: expected <= n_fft={n_fft}, got {win_length}")
    lpad = (n_fft - win_length) // 2
    out = np.zeros(n_fft)
    out[lpad: lpad + win_length] = w
    return out


def _resolve(n_fft, hop_length, win_length):
    n_fft = positive_int("n_fft", n_fft)
    win_length = n_fft if win_length is None else positive_int("win_length", win_length)
    hop_length = win_length // 4 if hop_length is None else positive_int("hop_length", hop_length)
    if hop_length < 1:
        raise ValueError(f"hop_length: win_length // 4 is 0 for win_length={win_length}; give hop_length")
    return n_fft, hop_length, win_length


def _padded_frames(y, n_fft, hop_length, center, pad_mode):
    if center:
        choice("pad_mode", pad_mode, PAD_MODES)
        if pad_mode == "reflect" and y.size <= n_fft // 2:
            raise ValueError(f"y: pad_mode='reflect' needs more than n_fft//2={n_fft // 2} samples, "
                             f"got {y.size}")
        y = np.pad(y, (n_fft // 2, n_fft // 2), mode=pad_mode)    # [features:frames-center]
    return frame_signal(y, n_fft, hop_length)                       # (n_frames, n_fft) view


def stft(y: np.ndarray, *, n_fft: int = 2048, hop_length: Optional[int] = None,
         win_length: Optional[int] = None, window="hann", center: bool = True,
         pad_mode: str = "constant") -> np.ndarray:
    """Short-time Fourier transform, librosa 0.11's ``stft``.

    Args:
        y: ``(N,)`` float32 or float64 signal.
        n_fft: DFT size; ``win_length`` defaults to ``n_fft``, ``hop_length`` to ``win_length // 4``.
        window: a name (periodic version) or an array ``(win_length,)``.
        center: pad ``n_fft // 2`` samples on both sides with ``pad_mode`` so frame ``t`` is centred
            on sample ``t * hop_length``.

    Returns:
        complex ``(1 + n_fft // 2, n_frames)``: complex64 for float32 input, complex128 for float64.
    """
    y = _check_signal("y", y)
    n_fft, hop_length, win_length = _resolve(n_fft, hop_length, win_length)
    w = _analysis_window(window, win_length, n_fft).astype(y.dtype)
    frames = _padded_frames(y, n_fft, hop_length, center, pad_mode)   # (n_frames, n_fft)
    # scipy.fft.rfft is numpy.fft's pocketfft, but it stays in float32 for float32 input (numpy 2.4's
    # float32 path measured 5-7x slower); the windowed copy is ours, so it may be overwritten.
    X = scipy.fft.rfft(frames * w, axis=-1, overwrite_x=True)          # [features:dft]
    return np.ascontiguousarray(X.T)                                   # (1 + n_fft//2, n_frames)


def dft_matrix(n_fft: int) -> np.ndarray:
    """The real-input DFT as a matrix ``(1 + n_fft//2, n_fft)``: ``F[k, n] = exp(-2 pi i k n / n_fft)``."""
    n_fft = positive_int("n_fft", n_fft)
    k = np.arange(n_fft // 2 + 1)[:, None]
    n = np.arange(n_fft)[None, :]
    return np.exp(-2j * np.pi * ((k * n) % n_fft) / n_fft)            # [features:dft]


def stft_reference(y: np.ndarray, *, n_fft: int = 2048, hop_length: Optional[int] = None,
                   win_length: Optional[int] = None, window="hann", center: bool = True,
                   pad_mode: str = "constant") -> np.ndarray:
    """Same as :func:`stft`, written as the definition: one loop over frames, one DFT-matrix product.

    ``X[k, t] = sum_n w[n] y_pad[t * hop + n] exp(-2 pi i k n / n_fft)``. O(n_fft^2) per frame:
    for checking only.
    """
    y = _check_signal("y", y).astype(np.float64)
    n_fft, hop_length, win_length = _resolve(n_fft, hop_length, win_length)
    w = _analysis_window(window, win_length, n_fft)
    if center:
        y = np.pad(y, (n_fft // 2, n_fft // 2), mode=pad_mode)
    F = dft_matrix(n_fft)                                              # (K, n_fft)
    n_frames = 1 + (y.size - n_fft) // hop_length
    X = np.empty((n_fft // 2 + 1, n_frames), dtype=np.complex128)
    for t in range(n_frames):
        X[:, t] = F @ (w * y[t * hop_length: t * hop_length + n_fft])
    return X


def istft(stft_matrix: np.ndarray, *, hop_length: Optional[int] = None, win_length: Optional[int] = None,
          n_fft: Optional[int] = None, window="hann", center: bool = True,
          length: Optional[int] = None) -> np.ndarray:
    """Inverse STFT by weighted overlap-add, librosa 0.11's ``istft``.

    Args:
        stft_matrix: complex ``(1 + n_fft // 2, n_frames)``.
        n_fft: defaults to ``2 * (rows - 1)``; other arguments as in :func:`stft`.
        length: trim or zero-pad the output to exactly this many samples.

    Returns:
        ``(n_samples,)`` float32 for complex64 input, float64 for complex128.
    """
    if not isinstance(stft_matrix, np.ndarray) or stft_matrix.ndim != 2:
        raise ValueError("stft_matrix: expected a 2-D complex array (1 + n_fft//2, n_frames)")
    if stft_matrix.dtype not in (np.complex64, np.complex128):
        raise TypeError(f"stft_matrix: expected complex64 or complex128, got {stft_matrix.dtype}")
    if not np.all(np.isfinite(stft_matrix)):
        raise ValueError("stft_matrix: expected finite values")
    K, n_frames = stft_matrix.shape
    if n_fft is None:
        n_fft = 2 * (K - 1)
    n_fft, hop_length, win_length = _resolve(n_fft, hop_length, win_length)
    if K != n_fft // 2 + 1:
        raise ValueError(f"stft_matrix: expected {n_fft // 2 + 1} rows for n_fft={n_fft}, got {K}")
    real = np.float32 if stft_matrix.dtype == np.complex64 else np.float64
    w = _analysis_window(window, win_length, n_fft)
    frames = np.fft.irfft(stft_matrix.T, n=n_fft, axis=-1) * w      # (n_frames, n_fft)
    n_out = n_fft + hop_length * (n_frames - 1)
    y = np.zeros(n_out)
    wss = np.zeros(n_out)                                            # sum_t w[n - t*hop]^2
    for t in range(n_frames):                                        # [features:istft-ola]
        y[t * hop_length: t * hop_length + n_fft] += frames[t]
        wss[t * hop_length: t * hop_length + n_fft] += w * w
    nz = wss > np.finfo(real).tiny
    y[nz] /= wss[nz]
    if center:
        y = y[n_fft // 2:] if length is not None else y[n_fft // 2: n_out - n_fft // 2]
    if length is not None:
        length = positive_int("length", length, minimum=0)
        y = y[:length] if y.size >= length else np.pad(y, (0, length - y.size))
    return y.astype(real)
