"""Analysis windows and framing (Kaldi's ``snip_edges`` and librosa's ``center``).

Windows (docs/equations/features.md):
- rectangular ``w[n] = 1``
- Hann ``0.5 - 0.5 cos(2 pi n / M)``: *periodic* with ``M = N`` (librosa, scipy ``fftbins=True``),
  *symmetric* with ``M = N - 1`` (Kaldi's "hanning")
- Hamming ``0.54 - 0.46 cos(2 pi n / M)``, Blackman ``0.42 - 0.5 cos(.) + 0.08 cos(2 .)``
- Povey (Kaldi's default) = symmetric Hann to the power 0.85.

Framing turns a signal ``(N,)`` into a read-only strided view ``(n_frames, frame_length)``
(no copy: frame ``i`` starts ``i * hop`` samples after frame 0).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .._validate import choice, positive_int

WINDOWS = ("rectangular", "hann", "hamming", "povey", "blackman")


@lru_cache(maxsize=64)
def _window_cached(name: str, N: int, periodic: bool) -> np.ndarray:
    if N == 1:                            # one sample: [1] (scipy's convention for either kind)
        w = np.ones(1)
        w.setflags(write=False)
        return w
    # BEGIN ASSIGNMENT A1 points=2
    M = N if periodic else N - 1          # denominator: periodic (DFT-even) or symmetric
    n = np.arange(N, dtype=np.float64)
    a = 2.0 * np.pi * n / M               # angle 2 pi n / M
    if name == "rectangular":
        w = np.ones(N)                                        # [features:window-rect]
    elif name == "hann":
        w = 0.5 - 0.5 * np.cos(a)                             # [features:window-hann]
    elif name == "hamming":
        w = 0.54 - 0.46 * np.cos(a)                           # [features:window-hamming]
    elif name == "povey":
        w = (0.5 - 0.5 * np.cos(a)) ** 0.85                   # [features:window-povey]
    else:  # blackman
        w = 0.42 - 0.5 * np.cos(a) + 0.08 * np.cos(2.0 * a)   # [features:window-blackman]
    # END ASSIGNMENT
    w.setflags(write=False)
    return w


def get_window(name: str, N: int, *, periodic: bool = True) -> np.ndarray:
    """Window of length ``N`` as a read-only float64 array ``(N,)``.

    ``periodic=True`` is librosa's/scipy's ``fftbins=True`` (denominator ``N``); ``periodic=False``
    is the symmetric window Kaldi uses (denominator ``N - 1``). Names: rectangular (also "boxcar",
    "ones"), hann (also "hanning"), hamming, povey, blackman.
    """
    if not isinstance(name, str):
        raise TypeError(f"window: expected a window name, got {type(name).__name__}")
    name = {"boxcar": "rectangular", "ones": "rectangular", "hanning": "hann"}.get(name, name)
    choice("window", name, WINDOWS)
    N = positive_int("N", N)
    return _window_cached(name, N, bool(periodic))


def frame_signal(y: np.ndarray, frame_length: int, hop_length: int) -> np.ndarray:
    """Strided view of ``y (N,)`` as frames ``(n_frames, frame_length)``, ``n_frames = 1 + (N - L) // hop``.

    No copy is made; the view is read-only so nobody writes into the caller's signal through it.
    """
    if y.shape[-1] < frame_length:
        raise ValueError(f"y: signal of {y.shape[-1]} samples is shorter than one frame ({frame_length})")
    return np.lib.stride_tricks.sliding_window_view(y, frame_length)[::hop_length]  # [features:frames-center]


def num_frames_kaldi(num_samples: int, frame_length: int, frame_shift: int, snip_edges: bool) -> int:
    """Kaldi's ``NumFrames``: how many frames a signal of ``num_samples`` gives."""
    # BEGIN ASSIGNMENT A1
    if snip_edges:  # whole frames only [features:frames-snip]
        return 0 if num_samples < frame_length else 1 + (num_samples - frame_length) // frame_shift
    return (num_samples + frame_shift // 2) // frame_shift
    # END ASSIGNMENT


def kaldi_frame_source(y: np.ndarray, frame_length: int, frame_shift: int,
                       snip_edges: bool) -> tuple[np.ndarray, int, int]:
    """Where Kaldi's frames live: ``(signal, first, n_frames)`` such that frame ``i`` is
    ``signal[first + i * frame_shift : first + i * frame_shift + frame_length]``.

    ``signal`` is ``y`` itself (``snip_edges=True``, or when no frame reaches past an edge) or ``y``
    mirrored at its edges (numpy's "symmetric" pad, Kaldi's ``x[-1] = x[0]``).
    """
    # BEGIN ASSIGNMENT A1 points=2
    N = y.shape[0]
    n = num_frames_kaldi(N, frame_length, frame_shift, snip_edges)
    if n == 0 or snip_edges:                                    # [features:frames-snip]
        return y, 0, n
    begin0 = frame_shift // 2 - frame_length // 2               # first frame's first sample (may be < 0)
    end_last = (n - 1) * frame_shift + begin0 + frame_length    # one past the last frame's last sample
    pad_left, pad_right = max(0, -begin0), max(0, end_last - N)
    yp = y
    # np.pad "symmetric" reflects repeatedly when the pad exceeds the signal, as Kaldi's while-loop does.
    if pad_left or pad_right:
        yp = np.pad(y, (pad_left, pad_right), mode="symmetric")
    return yp, begin0 + pad_left, n
    # END ASSIGNMENT


def frames_kaldi(y: np.ndarray, frame_length: int, frame_shift: int, snip_edges: bool) -> np.ndarray:
    """Kaldi's framing (``ExtractWindow`` before any processing): ``(n_frames, frame_length)``.

    ``snip_edges=True``: frame ``i`` covers ``[i*shift, i*shift + L)`` and only whole frames are kept.
    ``snip_edges=False``: frame ``i`` is centred on ``i*shift + shift//2`` and samples outside the
    signal are mirrored with the edge sample repeated (``x[-1] = x[0]``, numpy's "symmetric" pad).
    A read-only strided view (no copy) of ``y`` or of its mirrored copy.
    """
    signal, first, n = kaldi_frame_source(y, frame_length, frame_shift, snip_edges)
    if n == 0:
        return np.empty((0, frame_length), dtype=y.dtype)
    return np.lib.stride_tricks.sliding_window_view(signal[first:], frame_length)[::frame_shift][:n]
